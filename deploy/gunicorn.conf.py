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
if os.environ.get("LOG_FORMAT") == "json":
    # Access lines as JSON too, with the request id the portal echoed (X-Request-ID).
    access_log_format = ('{"logger": "gunicorn.access", "remote": "%(h)s", "method": "%(m)s", "path": "%(U)s", '
                         '"status": %(s)s, "bytes": "%(B)s", "duration_ms": %(M)s, "request_id": "%({x-request-id}o)s"}')
# X-Forwarded-* are interpreted by Django (TRUSTED_PROXY_COUNT), not by gunicorn.
forwarded_allow_ips = ""


# /metrics across workers: with PROMETHEUS_MULTIPROC_DIR set (an empty directory, cleared at each
# start; the systemd unit and the container use a tmpfs) every worker writes its samples there and
# /metrics adds them up. A dead worker's live gauges are dropped here.
def child_exit(server, worker):
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
