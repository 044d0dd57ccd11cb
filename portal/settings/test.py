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

# Tests publish real Celery messages to a Redis database of their own (default 15), so a demo
# worker on database 0 never consumes test tasks; conftest empties the queue after the session.
from urllib.parse import urlsplit, urlunsplit  # noqa: E402

from .base import REDIS_URL  # noqa: E402

_redis = urlsplit(REDIS_URL)
CELERY_BROKER_URL = urlunsplit(_redis._replace(path=f"/{env('TEST_REDIS_DB', '15')}"))
