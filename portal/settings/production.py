from django.core.exceptions import ImproperlyConfigured

from .base import *  # noqa: F401,F403
from .base import LOGGING, SECRET_KEY, TRUSTED_PROXY_COUNT, env, env_bool

if len(SECRET_KEY) < 50:
    raise ImproperlyConfigured("SECRET_KEY must be set to a random string of at least 50 characters.")

DEBUG = False
# The sandbox gateway takes test cards and its webhook credits balances: off unless asked for (a
# staging host); `check --deploy` fails while it is on (portal/checks.py).
PAYMENT_SANDBOX_ENABLED = env_bool("PAYMENT_SANDBOX_ENABLED", False)
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
# Health checks and Prometheus talk plain HTTP to the web host itself, inside the network.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^metrics$"]
if TRUSTED_PROXY_COUNT:
    # Only behind a proxy we trust do we believe its protocol header.
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
SECURE_HSTS_SECONDS = int(env("SECURE_HSTS_SECONDS", "31536000"))
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_HSTS_PRELOAD = True
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.ManifestStaticFilesStorage"},
}
# JSON log lines unless LOG_FORMAT says otherwise (log shippers parse them without a grok pattern).
if env("LOG_FORMAT") is None:
    LOG_FORMAT = "json"
    LOGGING["handlers"]["console"]["formatter"] = "json"
