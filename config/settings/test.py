"""Tests: the real services (PostgreSQL, Redis) named by the environment, fast hashing."""

from config.settings.base import *  # noqa: F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
# Tests serve static files through the finders (live server); nothing is collected.
STATIC_ROOT = None
WHITENOISE_USE_FINDERS = True
# Tests hold connections across threads and fixtures in ways a pool of 4 would starve; a
# process a test starts gets the production pool by setting DB_POOL_MAX_SIZE itself.
if not env.is_set("DB_POOL_MAX_SIZE") and "pool" in DATABASES["default"]["OPTIONS"]:  # noqa: F405
    del DATABASES["default"]["OPTIONS"]["pool"]  # noqa: F405
    DATABASES["default"]["CONN_MAX_AGE"] = 60  # noqa: F405
# Rate limits are tested where they are the subject (tests/test_rate_limits.py); ids and
# MACs repeat across tests, so elsewhere the limits must not interfere unless a variable
# (THROTTLE_<SCOPE>) sets one for a process a test starts.
REST_FRAMEWORK = {
    **REST_FRAMEWORK,  # noqa: F405
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
    "DEFAULT_THROTTLE_RATES": {
        scope: rate if env.is_set(f"THROTTLE_{scope.upper()}") else "100000/s"  # noqa: F405
        for scope, rate in THROTTLE_RATES.items()  # noqa: F405
    },
}
