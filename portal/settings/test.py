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
