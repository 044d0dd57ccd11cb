"""Production settings plus the bench's one extra page (bench/urls.py); used only by bench/pages.py."""
from portal.settings.production import *  # noqa: F401,F403

ROOT_URLCONF = "bench.urls"
