"""Production: secure defaults, and no start-up without real secrets and hosts."""

from django.core.exceptions import ImproperlyConfigured

from config.settings.base import *  # noqa: F403
from config.settings.base import env

DEBUG = False
SECRET_KEY = env.required("SECRET_KEY")
if len(SECRET_KEY) < 50 or SECRET_KEY.startswith("dev-only"):
    raise ImproperlyConfigured("SECRET_KEY must be a random string of at least 50 characters")
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS")
if not ALLOWED_HOSTS:
    raise ImproperlyConfigured("ALLOWED_HOSTS must list the host names the site answers to")

# Whether a request came over https is gunicorn's to say (wsgi.url_scheme): it believes
# X-Forwarded-Proto only from FORWARDED_ALLOW_IPS, the TLS proxy's address. Django's
# SECURE_PROXY_SSL_HEADER would believe it from anyone, so it is not set.
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", True)
# The container probe asks over plain HTTP on 127.0.0.1 (config.probe web).
SECURE_REDIRECT_EXEMPT = [r"^health/$"]
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", 31536000, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_HSTS_PRELOAD = True
SECURE_CONTENT_TYPE_NOSNIFF = True
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
X_FRAME_OPTIONS = "DENY"

# Gzip/brotli copies made at collectstatic; no hashed names, so the dashboard's relative
# ES-module imports keep working.
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
