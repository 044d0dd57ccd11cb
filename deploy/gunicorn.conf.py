"""gunicorn settings for production (Procfile `web`). Override with environment variables."""
import multiprocessing
import os

bind = os.environ.get("PORTAL_BIND", "127.0.0.1:8000")  # the reverse proxy connects here
workers = int(os.environ.get("WEB_CONCURRENCY", multiprocessing.cpu_count() * 2 + 1))
threads = int(os.environ.get("WEB_THREADS", "1"))  # >1 switches to the gthread worker
timeout = int(os.environ.get("WEB_TIMEOUT", "30"))
graceful_timeout = 30
keepalive = 5
max_requests = 2000  # recycle workers now and then: bounds memory growth of long-lived processes
max_requests_jitter = 200
accesslog = "-"
errorlog = "-"
# X-Forwarded-* are interpreted by Django (TRUSTED_PROXY_COUNT), not by gunicorn.
forwarded_allow_ips = ""
