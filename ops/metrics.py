"""Prometheus metrics owned by every process. With PROMETHEUS_MULTIPROC_DIR set (gunicorn with several
workers) prometheus_client keeps them in files there and /metrics adds all workers up."""
import os

from prometheus_client import CollectorRegistry, Histogram, generate_latest, multiprocess
from prometheus_client import REGISTRY as DEFAULT_REGISTRY

REQUEST_LATENCY = Histogram(
    "portal_request_duration_seconds", "Time to answer a request, by view (URL name).",
    ["view", "method", "status"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)


def exposition(*extra_collectors) -> bytes:
    """The text exposition: this process's (or, in multiprocess mode, all workers') metrics plus the
    collectors given (read from the database and broker at scrape time)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        process_registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(process_registry)
    else:
        process_registry = DEFAULT_REGISTRY
    scrape_registry = CollectorRegistry(auto_describe=True)
    for collector in extra_collectors:
        scrape_registry.register(collector)
    return generate_latest(process_registry) + generate_latest(scrape_registry)
