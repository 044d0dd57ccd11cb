"""Settings shared by every environment. Everything deployment-specific comes from the environment."""
import os
from decimal import Decimal
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured
from django.utils.translation import gettext_lazy as _

BASE_DIR = Path(__file__).resolve().parent.parent.parent


def env(name: str, default: str | None = None) -> str | None:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


SECRET_KEY = env("SECRET_KEY", "")
DEBUG = False
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "127.0.0.1,localhost")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")

PORTAL_NAME = env("PORTAL_NAME", "HostPortal")
PORTAL_BASE_URL = env("PORTAL_BASE_URL", "http://127.0.0.1:8000").rstrip("/")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "crispy_forms",
    "crispy_bootstrap5",
    "django_htmx",
    "bootstrap",
    "djmoney",  # its exchange app is not installed: billing.Currency is the one rate store
    "django_otp",
    "django_otp.plugins.otp_totp",
    "django_otp.plugins.otp_static",
    "axes",
    "ops",  # heartbeats, request ids, metrics plumbing: below every domain app
    "accounts",
    "notifications",
    "notifications.telegram",
    "billing",
    "billing.gateways",
    "orders",
    "tickets",
    "passkeys",  # WebAuthn login; above accounts (registers a Settings section)
    "api",  # beside the portal at the top of the import graph: /api/v1/ over every app's services
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "portal",  # after the domain apps: its admin.py composes the back office on top of theirs
    # After our apps so accounts/templates/socialaccount/ overrides allauth's pages.
    "allauth",
    "allauth.account",
    "allauth.socialaccount",
    "allauth.socialaccount.providers.google",
    "allauth.socialaccount.providers.facebook",
]

MIDDLEWARE = [
    # First: every log line of the request carries its id, and the latency covers the whole stack.
    "ops.middleware.RequestIdMiddleware",
    "ops.middleware.RequestMetricsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "portal.middleware.RejectNulBytesMiddleware",
    "portal.middleware.SecurityHeadersMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "ops.middleware.LogUserMiddleware",
    "accounts.middleware.IPAllowlistMiddleware",
    "django_otp.middleware.OTPMiddleware",
    "accounts.middleware.CustomerLocaleMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "accounts.session_policy.SessionLifetimeMiddleware",  # after messages: it says why you were logged out
    # Inside the locale middleware, so the page is in the customer's language.
    "portal.middleware.MethodNotAllowedPageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "allauth.account.middleware.AccountMiddleware",
    # AxesMiddleware last: it turns lockouts raised by the auth backend into a response.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "portal.urls"
WSGI_APPLICATION = "portal.wsgi.application"
ASGI_APPLICATION = "portal.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.i18n",
                "django.template.context_processors.tz",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "portal.context_processors.portal",
                "accounts.context_processors.account",
            ],
            # Row links without the resolver's reverse() per row (core/links.py); crispy field markup
            # without its templates for plain fields (core/form_fields.py).
            "libraries": {"links": "core.links", "form_fields": "core.form_fields", "jinja": "core.jinja"},
        },
    },
    {
        # Hot page bodies and list rows (`{% jinja %}`, core/jinja.py): <app>/jinja2/<app>/*.jinja.html.
        "BACKEND": "django.template.backends.jinja2.Jinja2",
        "DIRS": [BASE_DIR / "jinja2"],
        "APP_DIRS": True,
        "OPTIONS": {"environment": "core.jinja.environment"},
    },
]

# --- Database: PostgreSQL only (ledger triggers, SKIP LOCKED) ---
DATABASE_URL = env("DATABASE_URL")
if not DATABASE_URL:
    raise ImproperlyConfigured(
        "DATABASE_URL is not set. Use `make run` / `make test`, which find or start PostgreSQL for you."
    )
DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=int(env("DB_CONN_MAX_AGE", "60")))}
if DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql":
    raise ImproperlyConfigured("DATABASE_URL must point to PostgreSQL.")
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
# Behind PgBouncer in transaction mode a server-side cursor cannot outlive its transaction.
DATABASES["default"]["DISABLE_SERVER_SIDE_CURSORS"] = env_bool("DB_DISABLE_SERVER_SIDE_CURSORS")
# Pages' compiled queries as prepared statements (core.compiled): planned once per connection. SQL-level
# PREPARE does not survive PgBouncer's transaction mode: off there (by default where server-side cursors are).
DB_PREPARED_STATEMENTS = env_bool("DB_PREPARED_STATEMENTS", not DATABASES["default"]["DISABLE_SERVER_SIDE_CURSORS"])
# Services own their transactions; ATOMIC_REQUESTS would delay on_commit hooks and defeat durable=True.
DATABASES["default"]["ATOMIC_REQUESTS"] = False
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis / Celery ---
REDIS_URL = env("REDIS_URL", "redis://127.0.0.1:6379/0")
CELERY_BROKER_URL = env("CELERY_BROKER_URL", REDIS_URL)
# kombu's Redis transport, with an unanswered ack freeing the worker's prefetch slot (portal/broker.py).
CELERY_BROKER_TRANSPORT = ("portal.broker:RedisTransport"
                           if CELERY_BROKER_URL.split("://", 1)[0] in ("redis", "rediss") else None)
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_TIME_LIMIT = 300
CELERY_TASK_SOFT_TIME_LIMIT = 240
CELERY_TIMEZONE = env("TIME_ZONE", "UTC")
# Enqueueing must fail fast when the broker is down: callers fall back to the outbox sweepers.
# The socket timeouts bound a publish to a Redis that accepts connections but never answers (frozen,
# SIGSTOP, half-open after a failover): without them a web request waits forever on the reply.
# They must stay above kombu's 1 s BRPOP timeout, or idle workers would keep reconnecting.
CELERY_BROKER_CONNECTION_TIMEOUT = 2
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "max_retries": 1, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.5,
    "socket_timeout": float(env("CELERY_BROKER_SOCKET_TIMEOUT", "3")), "socket_connect_timeout": 2,
}
CELERY_TASK_PUBLISH_RETRY_POLICY = {"max_retries": 1, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.2}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Workers reconnect to the broker forever (Celery's default gives up after 100 tries, ~47 min, and the
# worker exits); portal.celery also lifts the publishers' one-retry limit inside worker processes.
CELERY_BROKER_CONNECTION_RETRY = True
CELERY_BROKER_CONNECTION_MAX_RETRIES = None
# A task is acknowledged only after it ran (acks_late): with early acks a crash loses it. When only a
# pool process dies (kill -9, OOM) the worker rejects its task back to the queue at once
# (reject_on_worker_lost). When the whole worker dies, its unacked messages wait in Redis until they
# are older than the visibility timeout; any live worker then restores them, sweeping every
# `unacked_restore_interval` seconds (kombu's default sweep is 10 s x throttle 10 = ~100 s). So
# interrupted work resumes within ~timeout + interval (< 30 s). The price: a task running longer than
# the timeout is delivered again meanwhile - safe because every task is idempotent (row claims,
# SKIP LOCKED, idempotency keys). No task is ever queued with a countdown/ETA (a held task would be
# redelivered every timeout): retries are due times on outbox rows that the sweepers pick up.
# See docs/DEPLOYMENT.md ("Celery delivery guarantees"); portal/tests/faults/ proves it.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_TRANSPORT_OPTIONS["visibility_timeout"] = int(env("CELERY_VISIBILITY_TIMEOUT", "20"))
CELERY_BROKER_TRANSPORT_OPTIONS["unacked_restore_interval"] = int(env("CELERY_UNACKED_RESTORE_INTERVAL", "2"))
CELERY_BROKER_TRANSPORT_OPTIONS["unacked_restore_throttle"] = 1  # every sweep scans (one ZRANGE, cheap)
# Periodic jobs; each app adds its entries below its marker.
CELERY_BEAT_SCHEDULE: dict = {}
# --- beat schedule: accounts ---
CELERY_BEAT_SCHEDULE["accounts-data-exports"] = {"task": "accounts.tasks.data_exports_sweep_task", "schedule": 300.0}
# --- beat schedule: notifications ---
CELERY_BEAT_SCHEDULE["notifications-outbox-sweep"] = {"task": "notifications.tasks.outbox_sweep_task", "schedule": 60.0}
CELERY_BEAT_SCHEDULE["telegram-outbox-sweep"] = {"task": "notifications.telegram.tasks.telegram_outbox_sweep_task", "schedule": 60.0}
# --- beat schedule: billing ---
CELERY_BEAT_SCHEDULE["billing-refresh-rates"] = {"task": "billing.tasks.refresh_rates", "schedule": 6 * 3600}
CELERY_BEAT_SCHEDULE["billing-low-balance-sweep"] = {"task": "billing.tasks.low_balance_sweep", "schedule": 3600}
CELERY_BEAT_SCHEDULE["billing-invoices-pay-from-balance-sweep"] = {"task": "billing.tasks.invoices_pay_from_balance_sweep", "schedule": 3600}
CELERY_BEAT_SCHEDULE["billing-dunning"] = {"task": "billing.tasks.dunning_run", "schedule": 3600}
CELERY_BEAT_SCHEDULE["billing-vies-recheck"] = {"task": "billing.tasks.vies_recheck", "schedule": 6 * 3600}
# Closes last month's acts; idempotent, so running every 6 hours just catches up after downtime.
CELERY_BEAT_SCHEDULE["billing-acts-monthly"] = {"task": "billing.tasks.acts_generate_previous_month", "schedule": 6 * 3600}
# --- beat schedule: billing.gateways ---
# Every 5 s: it posts the sandbox's delayed events when due (SANDBOX_PENDING_DELAY) as well as retries;
# one indexed query when nothing is due. `expires` drops sweeps queued while no worker was running.
CELERY_BEAT_SCHEDULE["gateways-sandbox-webhooks"] = {"task": "billing.gateways.tasks.sandbox_webhooks_deliver_due", "schedule": 5.0,
                                                     "options": {"expires": 5.0}}
CELERY_BEAT_SCHEDULE["gateways-card-auto-top-up"] = {"task": "billing.gateways.tasks.card_auto_top_ups_run", "schedule": 3600.0}
# --- beat schedule: orders ---
CELERY_BEAT_SCHEDULE["orders-auto-renew"] = {"task": "orders.tasks.renew_services_task", "schedule": 3600.0}
CELERY_BEAT_SCHEDULE["orders-lifecycle"] = {"task": "orders.tasks.orders_lifecycle_task", "schedule": 3600.0}
CELERY_BEAT_SCHEDULE["orders-console-tokens-purge"] = {"task": "orders.tasks.console_tokens_purge_task",
                                                       "schedule": 86400.0}
CELERY_BEAT_SCHEDULE["orders-usage-sample"] = {"task": "orders.tasks.usage_sample_task", "schedule": 300.0,
                                               "options": {"expires": 300.0}}
CELERY_BEAT_SCHEDULE["orders-provisioning-sweep"] = {"task": "orders.tasks.provisioning_jobs_sweep_task", "schedule": 30.0,
                                                    "options": {"expires": 30.0}}
# --- beat schedule: tickets ---
CELERY_BEAT_SCHEDULE["tickets-autoclose"] = {"task": "tickets.tasks.tickets_autoclose_sweep", "schedule": 3600.0}

# Beat writes its heartbeat as it ticks (ops.heartbeats); workers write theirs from a bootstep.
CELERY_BEAT_SCHEDULER = "ops.heartbeats:HeartbeatScheduler"

# --- Cache: Redis when REDIS_URL is set (shared by every host), else per-process memory ---
# CACHE_URL defaults to REDIS_URL's server with database 1, so a cache clear never touches the
# broker's queues. ResilientRedisCache turns a Redis outage into cache misses (pages still render).
if env("REDIS_URL") or env("CACHE_URL"):
    from urllib.parse import urlsplit as _urlsplit, urlunsplit as _urlunsplit

    CACHE_URL = env("CACHE_URL") or _urlunsplit(_urlsplit(REDIS_URL)._replace(path="/1"))
    CACHES = {"default": {
        "BACKEND": "ops.cache.ResilientRedisCache",
        "LOCATION": CACHE_URL,
        "KEY_PREFIX": env("CACHE_KEY_PREFIX", "portal"),
        # Fail fast: a dead Redis costs each cache call half a second at most, not a hung worker.
        "OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 0.5},
    }}
    # Sessions read from the shared cache, written to both it and the database (accounts/sessions.py).
    SESSION_ENGINE = "accounts.sessions"
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
# The top bar's values (balance, unread counts, pending policies) cached per user, invalidated by the
# writes that change them (core/topbar.py); 0 turns the cache off. The lifetime bounds how stale a
# value can get if an invalidation is lost while the cache is unreachable.
TOPBAR_CACHE_SECONDS = int(env("TOPBAR_CACHE_SECONDS", "300"))

# --- beat schedule: api ---
CELERY_BEAT_SCHEDULE["api-idempotency-purge"] = {"task": "api.tasks.idempotency_purge_task", "schedule": 3600.0}
CELERY_BEAT_SCHEDULE["api-webhooks-sweep"] = {"task": "api.tasks.webhooks_sweep_task", "schedule": 60.0}

# --- Auth ---
AUTH_USER_MODEL = "accounts.User"
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "accounts.backends.UsernameOrEmailBackend",
]
LOGIN_URL = "accounts:login"
LOGIN_REDIRECT_URL = "dashboard"
LOGOUT_REDIRECT_URL = "accounts:login"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 10}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
EMAIL_VERIFICATION_MAX_AGE = int(env("EMAIL_VERIFICATION_MAX_AGE", str(3 * 24 * 3600)))
PASSWORD_RESET_TIMEOUT = 3 * 3600

# django-axes: lock a username+IP pair after repeated failures.
AXES_FAILURE_LIMIT = int(env("AXES_FAILURE_LIMIT", "5"))
AXES_COOLOFF_TIME = float(env("AXES_COOLOFF_HOURS", "0.25"))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "accounts/locked_out.html"
AXES_USERNAME_FORM_FIELD = "username"
AXES_CLIENT_IP_CALLABLE = "accounts.client_ip.client_ip_for_axes"
# "Demo", "DEMO ", and the account's email are one login for the counter above.
AXES_USERNAME_CALLABLE = "accounts.backends.axes_username"
# Password spraying (a few guesses at many logins from one address): failed logins from one IP, over
# all usernames within AXES_COOLOFF_HOURS, after which that IP gets the lockout page.
LOGIN_IP_FAILURE_LIMIT = int(env("LOGIN_IP_FAILURE_LIMIT", "30"))

# Sent on every response (portal.middleware.SecurityHeadersMiddleware). Scripts only from our own
# static files (no inline code); inline style attributes remain (templates and the SVG charts use them).
CONTENT_SECURITY_POLICY = env("CONTENT_SECURITY_POLICY", "; ".join([
    "default-src 'self'", "script-src 'self'", "style-src 'self' 'unsafe-inline'", "img-src 'self' data:",
    "font-src 'self' data:", "connect-src 'self'", "object-src 'none'", "base-uri 'self'", "frame-ancestors 'none'",
]))
PERMISSIONS_POLICY = env("PERMISSIONS_POLICY", ", ".join(
    f"{feature}=()" for feature in ("camera", "microphone", "geolocation", "payment", "usb")))

# /healthz shows error details (hosts, ports) only to staff or to `Authorization: Bearer <HEALTHZ_TOKEN>`.
HEALTHZ_TOKEN = env("HEALTHZ_TOKEN", "")

# Client IP: REMOTE_ADDR unless a trusted proxy is configured (then X-Forwarded-For, N hops).
TRUSTED_PROXY_COUNT = int(env("TRUSTED_PROXY_COUNT", "0"))

# --- i18n ---
LANGUAGE_CODE = "en"
LANGUAGES = [("en", _("English")), ("ru", _("Russian"))]
# One date and one date-time format per language (portal/formats/<lang>/formats.py).
FORMAT_MODULE_PATH = ["portal.formats"]
LOCALE_PATHS = [BASE_DIR / "locale"]
USE_I18N = True
USE_TZ = True
TIME_ZONE = env("TIME_ZONE", "UTC")

# --- Money ---
DEFAULT_CURRENCY = env("DEFAULT_CURRENCY", "EUR")
CURRENCIES = tuple(env_list("CURRENCIES", "EUR,USD,RUB,JPY,GBP"))
CURRENCY_CHOICES = sorted((c, c) for c in CURRENCIES)  # sorted, as djmoney.settings used to sort it in place on import
AUTO_CONVERT_MONEY = False

# --- Static / media ---
STATIC_URL = "/static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
# Uploaded files (ticket attachments, avatars, exports) live outside the static root and are served
# only by access-checked views (accounts.storage.PrivateStorage).
MEDIA_ROOT = Path(env("MEDIA_ROOT", str(BASE_DIR / ".data" / "media")))
PRIVATE_MEDIA_ROOT = MEDIA_ROOT / "private"
# "local" (MEDIA_ROOT on this host's disk) or "s3" (any S3-compatible store, shared by every host).
MEDIA_STORAGE = env("MEDIA_STORAGE", "local")
MEDIA_S3_BUCKET = env("MEDIA_S3_BUCKET", "")
MEDIA_S3_ENDPOINT_URL = env("MEDIA_S3_ENDPOINT_URL", "")  # empty: AWS; else MinIO, Ceph, moto...
MEDIA_S3_REGION = env("MEDIA_S3_REGION", "")
MEDIA_S3_ACCESS_KEY_ID = env("MEDIA_S3_ACCESS_KEY_ID", "")  # empty: boto3's chain (instance role, env)
MEDIA_S3_SECRET_ACCESS_KEY = env("MEDIA_S3_SECRET_ACCESS_KEY", "")
MEDIA_S3_PREFIX = env("MEDIA_S3_PREFIX", "private")

CRISPY_ALLOWED_TEMPLATE_PACKS = "bootstrap5"
CRISPY_TEMPLATE_PACK = "bootstrap5"

# --- Email ---
EMAIL_BACKEND = env("EMAIL_BACKEND", "django.core.mail.backends.smtp.EmailBackend")
EMAIL_HOST = env("EMAIL_HOST", "127.0.0.1")
EMAIL_PORT = int(env("EMAIL_PORT", "25"))
EMAIL_HOST_USER = env("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = env("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS")
EMAIL_TIMEOUT = 10
DEFAULT_FROM_EMAIL = env("DEFAULT_FROM_EMAIL", "billing@portal.local")
SERVER_EMAIL = DEFAULT_FROM_EMAIL

MESSAGE_TAGS = {40: "danger"}

SESSION_COOKIE_HTTPONLY = True
# Sessions end after this many seconds without a request, and this long after the login whatever the
# activity (0: off); security changes need a login (or /accounts/reauth/) younger than the last one.
SESSION_IDLE_TIMEOUT = int(env("SESSION_IDLE_TIMEOUT", str(2 * 3600)))
SESSION_ABSOLUTE_LIFETIME = int(env("SESSION_ABSOLUTE_LIFETIME", str(24 * 3600)))
SESSION_REAUTH_MAX_AGE = int(env("SESSION_REAUTH_MAX_AGE", str(15 * 60)))
SESSION_COOKIE_AGE = SESSION_ABSOLUTE_LIFETIME or 14 * 24 * 3600
# How long the cache may keep a session's copy (accounts/sessions.py, with Redis only).
SESSION_CACHE_SECONDS = int(env("SESSION_CACHE_SECONDS", "300"))
CSRF_COOKIE_HTTPONLY = False
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"

# LOG_FORMAT=json: one JSON object per line (production default); plain: readable lines (development).
# Both carry the request id, user id and customer id of the request being served (ops.logs).
LOG_FORMAT = env("LOG_FORMAT", "plain")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"request_context": {"()": "ops.logs.RequestContextFilter"}},
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s%(context)s: %(message)s"},
        "json": {"()": "ops.logs.JsonFormatter"},
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "json" if LOG_FORMAT == "json" else "plain",
                             "filters": ["request_context"]}},
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "INFO"}},
}

# --- Operations: heartbeats, /healthz, /metrics, error tracking ---
OPS_HEARTBEAT_INTERVAL = int(env("OPS_HEARTBEAT_INTERVAL", "15"))  # seconds between beat/worker heartbeats
# Components whose failure makes /healthz answer 503 (the others are reported but only degrade it):
# database, broker, beat, workers, outbox. `?require=` adds more for one check (monitoring).
HEALTHZ_REQUIRED = env_list("HEALTHZ_REQUIRED", "database,broker")
HEALTHZ_BEAT_MAX_AGE = int(env("HEALTHZ_BEAT_MAX_AGE", "120"))  # seconds since beat's last heartbeat
HEALTHZ_WORKER_MAX_AGE = int(env("HEALTHZ_WORKER_MAX_AGE", "120"))  # seconds since the newest worker heartbeat
HEALTHZ_OUTBOX_MAX_AGE = int(env("HEALTHZ_OUTBOX_MAX_AGE", "900"))  # oldest undelivered outbox row
# /metrics answers only a bearer token or an allowlisted client IP/network; neither set: 404.
METRICS_TOKEN = env("METRICS_TOKEN", "")
METRICS_ALLOWED_IPS = env_list("METRICS_ALLOWED_IPS")
SENTRY_DSN = env("SENTRY_DSN", "")
SENTRY_ENVIRONMENT = env("SENTRY_ENVIRONMENT", "production")
SENTRY_RELEASE = env("SENTRY_RELEASE", "")
SENTRY_TRACES_SAMPLE_RATE = float(env("SENTRY_TRACES_SAMPLE_RATE", "0"))

# --- app settings: portal ---
# Staff must enter a TOTP code (django-otp) to reach /admin/; `manage.py staff_totp <user>` enrols one.
ADMIN_REQUIRE_OTP = env_bool("ADMIN_REQUIRE_OTP", True)
# The dashboard's renewal forecast lists this many soonest renewals; the rest are summed in one line.
DASHBOARD_FORECAST_ROWS = int(env("DASHBOARD_FORECAST_ROWS", "10"))
# --- app settings: accounts ---
# Mobile number verification: accounts.phone.DevelopmentBackend (logs an SMS code),
# accounts.phone.DevelopmentCallBackend (logs a call-password), accounts.phone.HttpGatewayBackend.
PHONE_VERIFICATION_BACKEND = env("PHONE_VERIFICATION_BACKEND", "accounts.phone.DevelopmentBackend")
PHONE_GATEWAY_URL = env("PHONE_GATEWAY_URL", "")
PHONE_GATEWAY_TOKEN = env("PHONE_GATEWAY_TOKEN", "")
PHONE_GATEWAY_METHOD = env("PHONE_GATEWAY_METHOD", "sms")  # "sms" or "call"
PHONE_CODE_TTL = int(env("PHONE_CODE_TTL", "600"))  # seconds a code stays valid
PHONE_CODE_MAX_ATTEMPTS = int(env("PHONE_CODE_MAX_ATTEMPTS", "5"))  # wrong entries before a code dies
PHONE_CODES_PER_HOUR = int(env("PHONE_CODES_PER_HOUR", "5"))  # codes sent to one user per hour
INVITATION_MAX_AGE = int(env("INVITATION_MAX_AGE", str(7 * 24 * 3600)))  # trusted-user invitation links
OTP_TOTP_ISSUER = env("OTP_TOTP_ISSUER", PORTAL_NAME)
# POSTs per client IP and per account (email or user) as "attempts/seconds"; "0/…" switches one off.
# Counted in Redis (core.ratelimit); over the limit: 429 with Retry-After, the view is not run.
RATE_LIMITS = {
    "register": {"ip": env("RATE_LIMIT_REGISTER_IP", "10/3600"), "account": env("RATE_LIMIT_REGISTER_ACCOUNT", "3/3600")},
    "password_reset": {"ip": env("RATE_LIMIT_PASSWORD_RESET_IP", "10/3600"),
                       "account": env("RATE_LIMIT_PASSWORD_RESET_ACCOUNT", "3/3600")},
    "verification_resend": {"ip": env("RATE_LIMIT_VERIFICATION_RESEND_IP", "10/3600"),
                            "account": env("RATE_LIMIT_VERIFICATION_RESEND_ACCOUNT", "3/3600")},
}
OTP_LOGIN_MAX_ATTEMPTS = 5  # wrong second-factor codes before the login starts over
# "Export my data": how long the download link works, and how long a pending export may wait for a
# worker before the sweeper (beat or `manage.py data_exports`) builds it.
ACCOUNTS_EXPORT_LINK_HOURS = int(env("ACCOUNTS_EXPORT_LINK_HOURS", "48"))
ACCOUNTS_EXPORT_PENDING_GRACE_SECONDS = int(env("ACCOUNTS_EXPORT_PENDING_GRACE_SECONDS", "120"))
ACCOUNTS_AVATAR_MAX_BYTES = int(env("ACCOUNTS_AVATAR_MAX_BYTES", str(2 * 1024 * 1024)))
ACCOUNTS_AVATAR_SIZE = 256  # pixels, longest side after re-encoding
# Social login (django-allauth, social part only: our own views stay the login/registration flow).
# A provider appears on the login page and in Settings only when its credentials are set.
ACCOUNT_EMAIL_VERIFICATION = "none"
ACCOUNT_ADAPTER = "accounts.social.AccountAdapter"
SOCIALACCOUNT_ADAPTER = "accounts.social.SocialAccountAdapter"
SOCIALACCOUNT_EMAIL_VERIFICATION = "none"
SOCIALACCOUNT_AUTO_SIGNUP = False
SOCIALACCOUNT_STORE_TOKENS = False
SOCIALACCOUNT_PROVIDERS = {
    "google": {"SCOPE": ["openid", "profile", "email"], "OAUTH_PKCE_ENABLED": True},
    "facebook": {"METHOD": "oauth2", "SCOPE": ["email", "public_profile"]},
}
if env("GOOGLE_CLIENT_ID") and env("GOOGLE_CLIENT_SECRET"):
    SOCIALACCOUNT_PROVIDERS["google"]["APPS"] = [
        {"client_id": env("GOOGLE_CLIENT_ID"), "secret": env("GOOGLE_CLIENT_SECRET")}]
if env("FACEBOOK_APP_ID") and env("FACEBOOK_APP_SECRET"):
    SOCIALACCOUNT_PROVIDERS["facebook"]["APPS"] = [
        {"client_id": env("FACEBOOK_APP_ID"), "secret": env("FACEBOOK_APP_SECRET")}]
# --- app settings: notifications ---
# Outbox delivery: attempts before a mail is marked failed, and the exponential backoff between them.
NOTIFICATIONS_EMAIL_MAX_ATTEMPTS = int(env("NOTIFICATIONS_EMAIL_MAX_ATTEMPTS", "8"))
NOTIFICATIONS_EMAIL_RETRY_BASE_SECONDS = int(env("NOTIFICATIONS_EMAIL_RETRY_BASE_SECONDS", "60"))
NOTIFICATIONS_EMAIL_RETRY_MAX_SECONDS = 3600
# The sweeper re-queues mail pending this long past due, and mail "sending" this long (worker lost;
# longer than CELERY_TASK_TIME_LIMIT so a live send is never duplicated).
NOTIFICATIONS_OUTBOX_PENDING_GRACE_SECONDS = int(env("NOTIFICATIONS_OUTBOX_PENDING_GRACE_SECONDS", "120"))
NOTIFICATIONS_OUTBOX_STUCK_SECONDS = 600
NOTIFICATIONS_OUTBOX_SWEEP_BATCH = 500
# Telegram (notifications.telegram): hidden unless the bot token, its username and the webhook secret are set.
TELEGRAM_BOT_TOKEN = env("TELEGRAM_BOT_TOKEN", "")
TELEGRAM_BOT_USERNAME = env("TELEGRAM_BOT_USERNAME", "").lstrip("@")
TELEGRAM_WEBHOOK_SECRET = env("TELEGRAM_WEBHOOK_SECRET", "")  # setWebhook secret_token, checked on every update
TELEGRAM_API_BASE = env("TELEGRAM_API_BASE", "https://api.telegram.org").rstrip("/")
TELEGRAM_API_TIMEOUT = float(env("TELEGRAM_API_TIMEOUT", "10"))
TELEGRAM_LINK_TOKEN_TTL = int(env("TELEGRAM_LINK_TOKEN_TTL", "900"))  # seconds a "Link Telegram" deep link works
TELEGRAM_MAX_ATTEMPTS = int(env("TELEGRAM_MAX_ATTEMPTS", "8"))
# Webhook updates hold what customers wrote to the bot; the sweeper deletes them after this many days
# (well past Telegram's redelivery window, so the unique update_id still stops duplicates).
TELEGRAM_UPDATE_RETENTION_DAYS = int(env("TELEGRAM_UPDATE_RETENTION_DAYS", "30"))
# --- app settings: billing ---
# Rates are kept per 1 unit of this currency (the ECB publishes EUR-based rates).
BILLING_BASE_CURRENCY = env("BILLING_BASE_CURRENCY", "EUR")
BILLING_ECB_URL = env("BILLING_ECB_URL", "https://www.ecb.europa.eu/stats/eurofxref/eurofxref-daily.xml")
BILLING_ECB_TIMEOUT = float(env("BILLING_ECB_TIMEOUT", "10"))
# Feed rates older than this block conversions until refreshed (the ECB skips weekends/holidays).
BILLING_RATE_MAX_AGE_HOURS = int(env("BILLING_RATE_MAX_AGE_HOURS", "96"))
# Top-up limits, in BILLING_BASE_CURRENCY (amounts in other currencies are converted to compare).
BILLING_TOPUP_MIN = Decimal(env("BILLING_TOPUP_MIN", "1"))
BILLING_TOPUP_MAX = Decimal(env("BILLING_TOPUP_MAX", "50000"))
# The provider's block on invoice, act and contract PDFs.
# The provider's country (ISO code) for VAT place of supply: reverse charge only across an EU border,
# and an EU customer without a configured rate is refused an invoice instead of charged 0%. Empty turns
# these EU rules off (only the staff-configured rates apply); it matches the default seller details.
BILLING_SELLER_COUNTRY = env("BILLING_SELLER_COUNTRY", "NL").strip().upper()
# Dunning (billing/dunning.py): an unpaid service invoice is due this many days after it is issued;
# reminders go out on these days relative to the due date (negative: before it); a late fee of this
# percent of the invoice subtotal (0: none) is invoiced this many days after the due date.
BILLING_INVOICE_DUE_DAYS = int(env("BILLING_INVOICE_DUE_DAYS", "7"))
BILLING_DUNNING_DAYS = tuple(sorted({int(day) for day in env("BILLING_DUNNING_DAYS", "-3,1,7").split(",") if day.strip()}))
BILLING_LATE_FEE_PERCENT = Decimal(env("BILLING_LATE_FEE_PERCENT", "0"))
BILLING_LATE_FEE_AFTER_DAYS = int(env("BILLING_LATE_FEE_AFTER_DAYS", "7"))
# The provider's own VAT id: printed on invoices, credit notes and acts, and sent to VIES as the
# requester so that each check gets a consultation number.
BILLING_SELLER_VAT_ID = env("BILLING_SELLER_VAT_ID", "NL000000000B01").replace(" ", "").upper()
# VIES SOAP endpoint (checkVatApprox) and its timeout, seconds; see billing/vat.py for the policy when it is down.
BILLING_VIES_URL = env("BILLING_VIES_URL", "https://ec.europa.eu/taxation_customs/vies/services/checkVatService")
BILLING_VIES_TIMEOUT = int(env("BILLING_VIES_TIMEOUT", "10"))
BILLING_SELLER_DETAILS = env("BILLING_SELLER_DETAILS", "HostPortal B.V.\nServer Street 1\n1011 AB Amsterdam, NL")
# The provider's bank account, the one source for open invoice PDFs and the bank-transfer panel of the pay
# page (the invoice number is the payment reference). Unused until beneficiary and IBAN are both set.
BILLING_BANK_ACCOUNT = {
    "beneficiary": env("BANK_BENEFICIARY", ""),
    "bank_name": env("BANK_NAME", ""),
    "iban": env("BANK_IBAN", ""),
    "bic": env("BANK_BIC", ""),
    "address": env("BANK_ADDRESS", ""),
}
# Read-only one-line form of BILLING_BANK_ACCOUNT, kept only because portal/tests/test_russian_documents.py
# still reads it; billing does not use it. Remove with that reference.
BILLING_BANK_DETAILS = ", ".join(value for value in BILLING_BANK_ACCOUNT.values() if value)
# --- app settings: billing.gateways ---
# Webhooks older (or further in the future) than this many seconds are rejected as replays.
PAYMENT_WEBHOOK_TOLERANCE = int(env("PAYMENT_WEBHOOK_TOLERANCE", "300"))
# Built-in sandbox provider (test cards; switch off in production): HMAC secret of its webhooks and
# the delay of "pending, then success" cards.
PAYMENT_SANDBOX_ENABLED = env_bool("PAYMENT_SANDBOX_ENABLED", True)
SANDBOX_WEBHOOK_SECRET = env("SANDBOX_WEBHOOK_SECRET", "sandbox-webhook-secret-change-me")
SANDBOX_PENDING_DELAY = int(env("SANDBOX_PENDING_DELAY", "20"))
# Stripe Checkout is offered only when both keys are set.
STRIPE_SECRET_KEY = env("STRIPE_SECRET_KEY", "")
STRIPE_WEBHOOK_SECRET = env("STRIPE_WEBHOOK_SECRET", "")
PAY_LINK_MAX_AGE = int(env("PAY_LINK_MAX_AGE", str(30 * 24 * 3600)))  # pay-without-login links
# --- app settings: orders ---
ORDERS_GRACE_DAYS = int(env("ORDERS_GRACE_DAYS", "3"))  # expired -> suspended after this many days
ORDERS_TERMINATE_AFTER_DAYS = int(env("ORDERS_TERMINATE_AFTER_DAYS", "14"))  # suspended -> terminated
# Mandatory notices this many days before a non-renewed service is suspended / terminated (0: none).
ORDERS_SUSPENSION_NOTICE_DAYS = int(env("ORDERS_SUSPENSION_NOTICE_DAYS", "1"))
ORDERS_TERMINATION_NOTICE_DAYS = int(env("ORDERS_TERMINATION_NOTICE_DAYS", "3"))
ORDERS_PENDING_CANCEL_DAYS = int(env("ORDERS_PENDING_CANCEL_DAYS", "5"))  # unpaid new orders cancelled
ORDERS_RENEW_HOURS_BEFORE_EXPIRY = int(env("ORDERS_RENEW_HOURS_BEFORE_EXPIRY", "24"))
ORDERS_EXPIRY_NOTICE_DAYS = tuple(int(d) for d in env_list("ORDERS_EXPIRY_NOTICE_DAYS", "7,3,1"))
ORDERS_JOB_CHUNK_SIZE = int(env("ORDERS_JOB_CHUNK_SIZE", "200"))
ORDERS_PAGE_SIZE = 25
# Provisioning jobs (orders/provisioning/jobs.py): attempts, exponential back-off, and when a running
# job counts as lost (longer than CELERY_TASK_TIME_LIMIT, so a live worker is never overtaken).
PROVISIONING_JOB_MAX_ATTEMPTS = int(env("PROVISIONING_JOB_MAX_ATTEMPTS", "6"))
PROVISIONING_RETRY_BASE_SECONDS = int(env("PROVISIONING_RETRY_BASE_SECONDS", "30"))
PROVISIONING_RETRY_MAX_SECONDS = int(env("PROVISIONING_RETRY_MAX_SECONDS", "1800"))
PROVISIONING_JOB_STUCK_SECONDS = int(env("PROVISIONING_JOB_STUCK_SECONDS", "360"))
PROVISIONING_JOB_PENDING_GRACE_SECONDS = 20
PROVISIONING_JOB_SWEEP_BATCH = 200
# libvirt module: domains are named "<prefix>-order-<id>" (one prefix per portal sharing a host).
PROVISIONING_LIBVIRT_PREFIX = env("PROVISIONING_LIBVIRT_PREFIX", "hostportal")
PROVISIONING_LIBVIRT_SHUTDOWN_TIMEOUT = int(env("PROVISIONING_LIBVIRT_SHUTDOWN_TIMEOUT", "60"))
# Proxmox VE module: a VM's VMID is base + order id; PVE's asynchronous tasks (UPIDs) are polled until
# they stop, for at most PROVISIONING_PROXMOX_TASK_TIMEOUT seconds (below CELERY_TASK_SOFT_TIME_LIMIT:
# the job fails and retries, and the retry reconciles with what the task did meanwhile).
PROVISIONING_PROXMOX_VMID_BASE = int(env("PROVISIONING_PROXMOX_VMID_BASE", "100000"))
PROVISIONING_PROXMOX_TASK_TIMEOUT = float(env("PROVISIONING_PROXMOX_TASK_TIMEOUT", "200"))
PROVISIONING_PROXMOX_TASK_POLL_SECONDS = float(env("PROVISIONING_PROXMOX_TASK_POLL_SECONDS", "2"))
PROVISIONING_PROXMOX_HTTP_TIMEOUT = float(env("PROVISIONING_PROXMOX_HTTP_TIMEOUT", "30"))
PROVISIONING_PROXMOX_SHUTDOWN_TIMEOUT = int(env("PROVISIONING_PROXMOX_SHUTDOWN_TIMEOUT", "60"))
# Customer power actions (start/shutdown/reboot/power off) per service, "attempts/seconds" (Redis).
SERVER_POWER_RATE_LIMIT = env("SERVER_POWER_RATE_LIMIT", "10/600")
# Browser console: noVNC (Debian's `novnc` package, served as /static/novnc/) talks to websockify (the
# `console` process) at CONSOLE_WEBSOCKET_URL: a path is on this site (nginx proxies it), a ws(s)://
# URL is another origin (added to the console page's connect-src). Tokens are one-time and expire.
NOVNC_DIR = env("NOVNC_DIR", "/usr/share/novnc")
if Path(NOVNC_DIR).is_dir():  # the console's noVNC client, from the OS package (no CDN)
    STATICFILES_DIRS.append(("novnc", NOVNC_DIR))
CONSOLE_WEBSOCKET_URL = env("CONSOLE_WEBSOCKET_URL", "/console/websockify")
CONSOLE_TOKEN_TTL = int(env("CONSOLE_TOKEN_TTL", "30"))  # seconds to open the websocket
# Reverse DNS through the PowerDNS Authoritative HTTP API; empty URL switches it off. The key is a
# secret (environment only). Zones: the reverse zones delegated to that server, comma-separated.
PDNS_API_URL = env("PDNS_API_URL", "")
PDNS_API_KEY = env("PDNS_API_KEY", "")
PDNS_SERVER_ID = env("PDNS_SERVER_ID", "localhost")
PDNS_REVERSE_ZONES = env("PDNS_REVERSE_ZONES", "")
PDNS_PTR_TTL = int(env("PDNS_PTR_TTL", "3600"))
# --- app settings: tickets ---
TICKETS_ATTACHMENT_MAX_BYTES = int(env("TICKETS_ATTACHMENT_MAX_BYTES", str(10 * 1024 * 1024)))
TICKETS_ATTACHMENTS_PER_MESSAGE = int(env("TICKETS_ATTACHMENTS_PER_MESSAGE", "5"))
# Request size: form bodies without files (Django's check), and whole multipart uploads, refused from
# their Content-Length before anything is stored (portal.middleware.RequestSizeLimitUploadHandler).
DATA_UPLOAD_MAX_MEMORY_SIZE = int(env("DATA_UPLOAD_MAX_MEMORY_SIZE", str(2 * 1024 * 1024)))
UPLOAD_MAX_REQUEST_BYTES = int(env("UPLOAD_MAX_REQUEST_BYTES",
                                   str(TICKETS_ATTACHMENT_MAX_BYTES * TICKETS_ATTACHMENTS_PER_MESSAGE + 1024 * 1024)))
FILE_UPLOAD_HANDLERS = [
    "portal.middleware.RequestSizeLimitUploadHandler",
    "django.core.files.uploadhandler.MemoryFileUploadHandler",
    "django.core.files.uploadhandler.TemporaryFileUploadHandler",
]
TICKETS_NEW_PER_HOUR = int(env("TICKETS_NEW_PER_HOUR", "5"))  # new tickets per customer per rolling hour
TICKETS_REOPEN_DAYS = int(env("TICKETS_REOPEN_DAYS", "14"))  # a closed ticket may be reopened this long
TICKETS_AUTOCLOSE_DAYS = int(env("TICKETS_AUTOCLOSE_DAYS", "7"))  # "answered" with no customer reply
TICKETS_AUTOCLOSE_WARNING_DAYS = int(env("TICKETS_AUTOCLOSE_WARNING_DAYS", "2"))  # warning ahead of auto-close
TICKETS_PAGE_SIZE = 20
# --- app settings: passkeys ---
# WebAuthn relying party: the site's host name and the origins pages are served from.
PASSKEYS_RP_ID = env("PASSKEYS_RP_ID", PORTAL_BASE_URL.split("://", 1)[-1].split("/", 1)[0].split(":", 1)[0])
PASSKEYS_ORIGINS = env_list("PASSKEYS_ORIGINS", PORTAL_BASE_URL)
PASSKEYS_CHALLENGE_TTL = 300  # seconds a registration or login challenge stays valid
# --- app settings: api ---
# Rate limits are counted in Redis (core.ratelimit), shared by every web process.
RATELIMIT_REDIS_URL = env("RATELIMIT_REDIS_URL", REDIS_URL)
RATELIMIT_KEY_PREFIX = env("RATELIMIT_KEY_PREFIX", "hp-rl")
API_RATE_LIMIT = int(env("API_RATE_LIMIT", "120"))  # requests per key per API_RATE_WINDOW
API_RATE_WINDOW = int(env("API_RATE_WINDOW", "60"))  # seconds
API_KEYS_PER_USER = int(env("API_KEYS_PER_USER", "20"))  # active keys one user may hold
API_IDEMPOTENCY_TTL = int(env("API_IDEMPOTENCY_TTL", str(24 * 3600)))  # seconds an Idempotency-Key is remembered
# Outgoing webhooks: attempts per event, exponential backoff between them, and how many failed attempts
# in a row disable an endpoint (the customer sees why and re-enables it).
WEBHOOKS_MAX_ATTEMPTS = int(env("WEBHOOKS_MAX_ATTEMPTS", "8"))
WEBHOOKS_RETRY_BASE_SECONDS = int(env("WEBHOOKS_RETRY_BASE_SECONDS", "60"))
WEBHOOKS_RETRY_MAX_SECONDS = int(env("WEBHOOKS_RETRY_MAX_SECONDS", str(6 * 3600)))
WEBHOOKS_DISABLE_AFTER_FAILURES = int(env("WEBHOOKS_DISABLE_AFTER_FAILURES", "20"))
WEBHOOKS_TIMEOUT = float(env("WEBHOOKS_TIMEOUT", "10"))
WEBHOOKS_PER_CUSTOMER = int(env("WEBHOOKS_PER_CUSTOMER", "10"))
# The SSRF guard refuses every non-public address; networks listed here are exempt (e.g. a provider's
# own monitoring network). Plain http:// only where WEBHOOKS_ALLOW_HTTP is on (tests, never production).
WEBHOOKS_ALLOWED_PRIVATE_NETWORKS = env_list("WEBHOOKS_ALLOWED_PRIVATE_NETWORKS")
WEBHOOKS_ALLOW_HTTP = False
REST_FRAMEWORK = {
    # Authentication, permission, throttle and pagination are set on api.views.CustomerApiView.
    "DEFAULT_AUTHENTICATION_CLASSES": [],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "api.errors.api_exception_handler",
    "UNAUTHENTICATED_USER": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": f"{PORTAL_NAME} API",
    "DESCRIPTION": "Customer API. Authenticate with `Authorization: Bearer <key>` (Settings → API keys).",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SERVE_AUTHENTICATION": [],
    "SCHEMA_PATH_PREFIX": "/api/v1",
    "REDOC_DIST": "SIDECAR",
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "ENUM_NAME_OVERRIDES": {
        "ServiceStatusEnum": "orders.models.Order.Status",
        "InvoiceStatusEnum": "billing.models.Invoice.Status",
        "InvoiceKindEnum": "billing.models.Invoice.Kind",
        "PaymentStatusEnum": "billing.models.Payment.Status",
        "TicketStatusEnum": "tickets.models.Ticket.Status",
        "TicketPriorityEnum": "tickets.models.Ticket.Priority",
        "NotificationKindEnum": "notifications.kinds.Kind",
    },
}
