"""Tests: the real services (PostgreSQL, Redis) named by the environment, fast hashing."""

from config.settings.base import *  # noqa: F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
# Tests serve static files through the finders (live server); nothing is collected.
STATIC_ROOT = None
WHITENOISE_USE_FINDERS = True
