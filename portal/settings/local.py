import os

# Local development: the machine's PostgreSQL unless DATABASE_URL says otherwise (`make run` sets it).
os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/portal")

from .base import *  # noqa: E402,F401,F403
from .base import DATABASES, env

DEBUG = True
# runserver opens a thread (and so a connection) per request: persistent connections pile up (83 were
# seen with 60 s). Production keeps DB_CONN_MAX_AGE from the environment.
DATABASES["default"]["CONN_MAX_AGE"] = int(env("DB_CONN_MAX_AGE", "0"))
SECRET_KEY = env("SECRET_KEY", "local-dev-only-not-secret-0123456789abcdefghijklmnopqrstuvwxyz")
EMAIL_BACKEND = env("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
# VMs of `make run` are named after its database, so two checkouts sharing this host's libvirt never meet.
PROVISIONING_LIBVIRT_PREFIX = env("PROVISIONING_LIBVIRT_PREFIX", f"hp-{DATABASES['default']['NAME']}").replace("_", "-")
