"""GET /metrics: Prometheus text exposition, for a bearer token (METRICS_TOKEN) or an allowlisted
client IP or network (METRICS_ALLOWED_IPS); 404 to everyone else, and to everyone when neither is set.

Request latency comes from ops.middleware.RequestMetricsMiddleware; the rest is read at scrape time:
Celery queue depth, outbox backlog, the last renewal run, the last ledger audit, exchange-rate age
and the beat/worker heartbeats."""
import ipaddress
import json
import logging

from django.conf import settings
from django.db.models import Max
from django.http import Http404, HttpRequest, HttpResponse
from django.utils import timezone
from django.utils.crypto import constant_time_compare
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.core import GaugeMetricFamily

from accounts.client_ip import client_ip
from billing.models import RateSnapshot
from ops.heartbeats import BEAT
from ops.metrics import exposition
from ops.selectors import heartbeat, heartbeat_seen_at, worker_heartbeats

from .backlog import celery_queue_depths, outbox_backlogs

logger = logging.getLogger(__name__)
LEDGER_AUDIT = "ledger-audit"
RENEWAL_RUN = "renewal-run"


def metrics_allowed(request: HttpRequest) -> bool:
    token = settings.METRICS_TOKEN
    authorization = request.headers.get("Authorization", "")
    if token and authorization.startswith("Bearer ") and constant_time_compare(authorization[7:], token):
        return True
    if settings.METRICS_ALLOWED_IPS:
        try:
            address = ipaddress.ip_address(client_ip(request))
        except ValueError:
            return False
        return any(address in ipaddress.ip_network(entry, strict=False) for entry in settings.METRICS_ALLOWED_IPS)
    return False


def _age(moment) -> float:
    return (timezone.now() - moment).total_seconds()


class PortalCollector:
    """Gauges read from PostgreSQL and Redis at each scrape (a failing source is skipped and logged)."""

    def collect(self):
        yield from self._guarded(self._queues)
        yield from self._guarded(self._outboxes)
        yield from self._guarded(self._heartbeats)
        yield from self._guarded(self._renewals)
        yield from self._guarded(self._ledger_audit)
        yield from self._guarded(self._rates)

    @staticmethod
    def _guarded(source):
        try:
            yield from list(source())
        except Exception:
            logger.warning("metrics source %s failed", source.__name__, exc_info=True)

    def _queues(self):
        gauge = GaugeMetricFamily("portal_celery_queue_depth", "Messages waiting in a Celery queue.", labels=["queue"])
        for queue, depth in celery_queue_depths().items():
            gauge.add_metric([queue], depth)
        yield gauge

    def _outboxes(self):
        waiting = GaugeMetricFamily("portal_outbox_backlog", "Undelivered rows per outbox.", labels=["outbox"])
        oldest = GaugeMetricFamily("portal_outbox_oldest_due_age_seconds",
                                   "How long the oldest due, undelivered row has waited (0: none due).", labels=["outbox"])
        for backlog in outbox_backlogs():
            waiting.add_metric([backlog.outbox], backlog.waiting)
            oldest.add_metric([backlog.outbox], _age(backlog.oldest_due) if backlog.oldest_due else 0)
        yield waiting
        yield oldest

    def _heartbeats(self):
        gauge = GaugeMetricFamily("portal_heartbeat_age_seconds", "Seconds since a process's last heartbeat.",
                                  labels=["component", "host"])
        beat_seen = heartbeat_seen_at(name=BEAT)
        if beat_seen:
            gauge.add_metric(["beat", ""], _age(beat_seen))
        for host, seen_at in worker_heartbeats().items():
            gauge.add_metric(["worker", host], _age(seen_at))
        yield gauge

    def _renewals(self):
        run = heartbeat(name=RENEWAL_RUN)
        if run is None:
            return
        yield GaugeMetricFamily("portal_renewal_run_age_seconds", "Seconds since the last auto-renewal run finished.",
                                value=_age(run.seen_at))
        yield GaugeMetricFamily("portal_renewal_run_ok", "1 if the last auto-renewal run had no errors.", value=int(bool(run.ok)))
        orders = GaugeMetricFamily("portal_renewal_run_orders", "Orders in the last auto-renewal run, by result.",
                                   labels=["result"])
        for result, count in json.loads(run.detail or "{}").items():
            orders.add_metric([result], count)
        yield orders

    def _ledger_audit(self):
        audit = heartbeat(name=LEDGER_AUDIT)
        if audit is None:
            return
        yield GaugeMetricFamily("portal_ledger_audit_ok", "1 if the last `manage.py audit_ledger` passed.", value=int(bool(audit.ok)))
        yield GaugeMetricFamily("portal_ledger_audit_age_seconds", "Seconds since the last ledger audit.", value=_age(audit.seen_at))

    def _rates(self):
        gauge = GaugeMetricFamily("portal_exchange_rate_age_seconds", "Seconds since each currency's latest rate.",
                                  labels=["currency"])
        for currency, fetched_at in RateSnapshot.objects.order_by().values("currency").annotate(latest=Max("fetched_at")).values_list(
                "currency", "latest"):
            gauge.add_metric([currency], _age(fetched_at))
        yield gauge


@require_GET
@never_cache
def metrics(request: HttpRequest) -> HttpResponse:
    if not metrics_allowed(request):
        raise Http404
    return HttpResponse(exposition(PortalCollector()), content_type=CONTENT_TYPE_LATEST)
