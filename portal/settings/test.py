from .base import *  # noqa: F401,F403
from .base import DATABASES, env

DEBUG = False
SECRET_KEY = "test-only-secret-key-0123456789abcdefghijklmnopqrstuvwxyz-ABCDEFG"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
ALLOWED_HOSTS = ["*"]
# Several test runs may share one server: TEST_DB_NAME keeps them apart.
DATABASES["default"]["TEST"] = {"NAME": env("TEST_DB_NAME", "test_portal")}
AXES_FAILURE_LIMIT = 5
# The EU place-of-supply rules are off by default here: factory customers live in DE and most tests
# configure no VAT rate. Tax tests switch them on with `settings.BILLING_SELLER_COUNTRY = "NL"`.
BILLING_SELLER_COUNTRY = ""

# Parallel runs share one Redis: the suite's cache stays in-process (ops tests point a Redis cache
# at their own database explicitly).
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
# Pages' query counts are pinned on the uncached path; portal/tests/test_topbar_cache.py turns it on.
TOPBAR_CACHE_SECONDS = 0
# Likewise sessions come from the database; accounts/tests/test_sessions.py tests the cached engine.
SESSION_ENGINE = "django.contrib.sessions.backends.db"
SENTRY_DSN = ""
METRICS_TOKEN = ""
METRICS_ALLOWED_IPS: list[str] = []
MEDIA_STORAGE = "local"

# Admin tests log staff in with force_login; portal/tests/test_admin_otp.py proves the second factor.
ADMIN_REQUIRE_OTP = False

# PORTAL_TEST_CLOCK=2028-02-29T23:30:00+00:00 runs the suite as if the clock read that moment, ticking
# on from it, so CI proves no test depends on the day it runs. The offset from the real clock is fixed
# once and inherited by the processes tests start (workers, beat), so all of them share one clock.
_clock = env("PORTAL_TEST_CLOCK", "")
if _clock:
    import datetime as _dt
    import os as _os
    import time as _time

    import time_machine as _time_machine

    if "PORTAL_TEST_CLOCK_OFFSET" not in _os.environ:
        _os.environ["PORTAL_TEST_CLOCK_OFFSET"] = str(_dt.datetime.fromisoformat(_clock).timestamp() - _time.time())
    _time_machine.travel(_time.time() + float(_os.environ["PORTAL_TEST_CLOCK_OFFSET"]), tick=True).start()

# Many tests log in once and then travel the clock by days: the session policy is off here and
# switched on by accounts/tests/test_session_policy.py.
SESSION_IDLE_TIMEOUT = SESSION_ABSOLUTE_LIFETIME = SESSION_REAUTH_MAX_AGE = 0

# Tests publish real Celery messages to a Redis database of their own (default 15), so a demo
# worker on database 0 never consumes test tasks; conftest empties the queue after the session.
from urllib.parse import urlsplit, urlunsplit  # noqa: E402

from .base import REDIS_URL  # noqa: E402

_redis = urlsplit(REDIS_URL)
CELERY_BROKER_URL = urlunsplit(_redis._replace(path=f"/{env('TEST_REDIS_DB', '15')}"))
# Rate-limit counters: the test Redis database, under a prefix per test database (parallel runs).
RATELIMIT_REDIS_URL = CELERY_BROKER_URL
RATELIMIT_KEY_PREFIX = f"test-rl-{DATABASES['default']['TEST']['NAME']}-{env('PYTEST_XDIST_WORKER', '')}"

# N+1 detector (django-zeal) in raise mode: every request the suite makes fails on a lazy relation
# loaded once per row. Allowlist only with a reason.
INSTALLED_APPS = [*INSTALLED_APPS, "zeal"]  # noqa: F405
MIDDLEWARE = ["zeal.middleware.zeal_middleware", *MIDDLEWARE]  # noqa: F405
ZEAL_RAISE = True
ZEAL_ALLOWLIST: list[dict] = [
    # billing.services.ledger.provider_account(): one get_or_create per distinct provider account (holding,
    # revenue, tax, fx) while posting a payment; different rows by code, not a lazy relation per row.
    {"model": "billing.LedgerAccount", "field": "get()"},
    # The owner is looked up once per Customer instance (cached on it); a request that notifies about
    # several objects meets the same customer through each of them (order.customer, invoice.customer).
    {"model": "accounts.Customer", "field": "users"},
    # Saving email preferences writes one row per notification kind (a fixed list, not data rows).
    {"model": "notifications.NotificationPreference", "field": "get()"},
    # Each orders service call re-reads its order by id (under a lock); a fixed number per request.
    {"model": "orders.Order", "field": "get()"},
    # A password change ends the user's other sessions one by one (a handful per user).
    {"model": "sessions.Session", "field": "get()"},
    # Each staff notification renders the one message it is about, with its attachments.
    {"model": "tickets.Message", "field": "attachments"},
    # Each invoice, credit note or act takes its number from the locked series counter.
    {"model": "billing.DocumentCounter", "field": "get()"},
    # Batch renewal renews each selected service (at most 100) in its own locked transaction, so one
    # refusal does not undo the others: each locks its own invoice row.
    {"model": "billing.Invoice", "field": "get()"},
]

# Test VMs are named after the test database, so two test runs on one hypervisor never share a domain;
# blank test disks boot no OS, so a graceful shutdown would only ever time out.
PROVISIONING_LIBVIRT_PREFIX = f"t-{DATABASES['default']['TEST']['NAME']}".replace("_", "-")
PROVISIONING_LIBVIRT_SHUTDOWN_TIMEOUT = 1
# No test reaches the real VIES: a closed loopback port answers "unavailable"; VIES tests start their own server.
BILLING_VIES_URL = "http://127.0.0.1:9/vies"
BILLING_VIES_TIMEOUT = 2
