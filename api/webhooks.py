"""Outgoing webhooks: events → outbox rows → signed HTTPS POSTs with retries.

Events come from notifications: `webhook_channel` is registered with notifications' channels, so every
notification of a mapped kind (written by billing, orders, tickets in their own transactions) also
writes one `WebhookDelivery` per subscribed endpoint, in that transaction. Delivery mirrors the email
outbox: claim with one conditional UPDATE, send, record; retries are due times picked by the sweeper.
Bodies are signed per Standard Webhooks (`webhook-id`, `webhook-timestamp`, `webhook-signature`).
"""
import base64
import ipaddress
import json
import logging
import secrets
import socket
from datetime import timedelta
from urllib.parse import urlsplit

import requests
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import F
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from standardwebhooks.webhooks import Webhook

from accounts.models import Customer, User
from accounts.services.activity import activity_record
from core.enqueue import enqueue_task_on_commit, enqueue_task_safely
from notifications.kinds import Kind

from .models import WebhookDelivery, WebhookEndpoint

logger = logging.getLogger(__name__)

# notification kind → public event type
EVENTS = {
    Kind.INVOICE_ISSUED: "invoice.issued",
    Kind.AUTOPAY_SUCCEEDED: "invoice.paid",
    Kind.PAYMENT_RECEIVED: "payment.received",
    Kind.SERVICE_ACTIVATED: "service.activated",
    Kind.SERVICE_RENEWED: "service.renewed",
    Kind.SERVICE_SUSPENDED: "service.suspended",
    Kind.SERVICE_TERMINATED: "service.terminated",
    Kind.TICKET_REPLY: "ticket.replied",
    Kind.LOW_BALANCE: "balance.low",
}
EVENT_LABELS = {
    "invoice.issued": gettext_lazy("Invoice issued"),
    "invoice.paid": gettext_lazy("Invoice paid automatically"),
    "payment.received": gettext_lazy("Payment received"),
    "service.activated": gettext_lazy("Service activated"),
    "service.renewed": gettext_lazy("Service renewed"),
    "service.suspended": gettext_lazy("Service suspended"),
    "service.terminated": gettext_lazy("Service terminated"),
    "ticket.replied": gettext_lazy("Reply to a ticket"),
    "balance.low": gettext_lazy("Low balance"),
}


# --- SSRF guard ------------------------------------------------------------------------------------

def _address_refused(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if ip.version == 6 and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if any(ip in ipaddress.ip_network(network) for network in settings.WEBHOOKS_ALLOWED_PRIVATE_NETWORKS):
        return False
    return not ip.is_global or ip.is_multicast


def url_check(url: str) -> list[str]:
    """The URL's addresses, or ValidationError if it is not HTTPS or any address is private,
    loopback, link-local or otherwise not public. Checked when saved and again before every send."""
    parts = urlsplit(url)
    if parts.scheme != "https" and not (settings.WEBHOOKS_ALLOW_HTTP and parts.scheme == "http") or not parts.hostname:
        raise ValidationError(_("The URL must start with https://."), code="not_https")
    if parts.username or parts.password:
        raise ValidationError(_("The URL must not contain a user name or password."), code="credentials")
    try:
        infos = socket.getaddrinfo(parts.hostname, parts.port or 443, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError):
        raise ValidationError(_("The host name cannot be resolved."), code="unresolvable") from None
    addresses = sorted({info[4][0] for info in infos})
    if not addresses or any(_address_refused(address) for address in addresses):
        raise ValidationError(_("Private, loopback and link-local addresses are not allowed."), code="private_address")
    return addresses


# --- endpoints -------------------------------------------------------------------------------------

def secret_new() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


@transaction.atomic
def webhook_endpoint_create(*, customer: Customer, user: User, url: str, events: list[str],
                            ip: str | None = None) -> WebhookEndpoint:
    unknown = [event for event in events if event not in EVENT_LABELS]
    if unknown or not events:
        raise ValidationError({"events": _("Choose at least one event from the list.")}, code="events")
    url_check(url)
    if WebhookEndpoint.objects.filter(customer=customer).count() >= settings.WEBHOOKS_PER_CUSTOMER:
        raise ValidationError(_("You have reached the limit of %(limit)d endpoints.") % {"limit": settings.WEBHOOKS_PER_CUSTOMER},
                              code="too_many")
    endpoint = WebhookEndpoint(customer=customer, created_by=user, url=url, events=sorted(set(events)), secret=secret_new())
    endpoint.full_clean()
    endpoint.save()
    _forget_endpoints()
    activity_record(action="webhook_created", customer=customer, actor=user, ip=ip, details={"url": url})
    return endpoint


@transaction.atomic
def webhook_endpoint_delete(*, endpoint: WebhookEndpoint, user: User, ip: str | None = None) -> None:
    activity_record(action="webhook_deleted", customer=endpoint.customer, actor=user, ip=ip, details={"url": endpoint.url})
    endpoint.delete()
    _forget_endpoints()


@transaction.atomic
def webhook_endpoint_enable(*, endpoint: WebhookEndpoint, user: User) -> WebhookEndpoint:
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(is_active=True, disabled_reason="", consecutive_failures=0)
    _forget_endpoints()
    endpoint.refresh_from_db()
    return endpoint


@transaction.atomic
def webhook_delivery_replay(*, delivery: WebhookDelivery) -> WebhookDelivery:
    """Send the same event again (same webhook-id, so receivers can deduplicate), even if it was delivered."""
    WebhookDelivery.objects.filter(pk=delivery.pk).exclude(status=WebhookDelivery.Status.SENDING).update(
        status=WebhookDelivery.Status.PENDING, next_attempt_at=timezone.now(), attempts=0, last_error="")
    _enqueue_on_commit(delivery.pk)
    delivery.refresh_from_db()
    return delivery


# --- events into the outbox ------------------------------------------------------------------------

def _enqueue_on_commit(delivery_id: int) -> None:
    from .tasks import webhook_deliver_task

    enqueue_task_on_commit(webhook_deliver_task, delivery_id=delivery_id)


def _active_endpoints() -> dict[int, list[WebhookEndpoint]]:
    """Active endpoints by customer, read once per transaction: bulk jobs notify thousands of customers
    in one transaction (notifications.bulk), and that must stay one query, not one per notice.

    The memo belongs to the connection's list of pending on-commit callbacks: Django replaces that
    list object whenever a transaction commits or rolls back (or a savepoint rolls back)."""
    from django.db import connection

    memo = getattr(connection, "_webhook_endpoints", None)
    if memo is not None and connection.in_atomic_block and memo[0] is connection.run_on_commit:
        return memo[1]
    by_customer: dict[int, list[WebhookEndpoint]] = {}
    for endpoint in WebhookEndpoint.objects.filter(is_active=True).only("pk", "customer_id", "events"):
        by_customer.setdefault(endpoint.customer_id, []).append(endpoint)
    connection._webhook_endpoints = (connection.run_on_commit, by_customer) if connection.in_atomic_block else None
    return by_customer


def _forget_endpoints() -> None:
    """An endpoint changed in this process: the next event re-reads them (other processes' open
    transactions may still use their list; a disabled endpoint's rows are simply never claimed)."""
    from django.db import connection

    connection._webhook_endpoints = None


def webhook_audience(*, kind: str, customer_ids: set[int]) -> set[int]:
    """notifications channel audience: the customers with an active endpoint for `kind`'s event."""
    event_type = EVENTS.get(kind)
    if event_type is None:
        return set()
    endpoints = _active_endpoints()
    return {customer_id for customer_id in customer_ids
            if any(event_type in endpoint.events for endpoint in endpoints.get(customer_id, ()))}


def webhook_channel(notification) -> None:
    """notifications channel: runs inside the transaction that stored the notification."""
    event_type = EVENTS.get(notification.kind)
    if event_type is None:
        return
    endpoints = [endpoint for endpoint in _active_endpoints().get(notification.customer_id, ())
                 if event_type in endpoint.events]
    if not endpoints:
        return
    event_id = f"evt_{notification.pk}"
    body = json.dumps({"type": event_type, "timestamp": notification.created_at.isoformat(),
                       "data": {"id": event_id, **notification.context}}, sort_keys=True, default=str)
    for endpoint in endpoints:
        delivery = WebhookDelivery.objects.create(endpoint=endpoint, event_id=event_id, event_type=event_type, payload=body)
        _enqueue_on_commit(delivery.pk)


# --- delivery --------------------------------------------------------------------------------------

def signed_headers(*, secret: str, event_id: str, body: str, now=None) -> dict[str, str]:
    now = now or timezone.now()
    return {"webhook-id": event_id, "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": Webhook(secret).sign(event_id, now, body), "content-type": "application/json",
            "user-agent": f"{settings.PORTAL_NAME}-Webhooks/1"}


def _backoff(attempts: int) -> timedelta:
    seconds = settings.WEBHOOKS_RETRY_BASE_SECONDS * (2 ** max(0, attempts - 1))
    return timedelta(seconds=min(seconds, settings.WEBHOOKS_RETRY_MAX_SECONDS))


def webhook_deliver(*, delivery_id: int) -> str | None:
    """Claim, send and record one delivery; returns its new status (None if not claimable now)."""
    now = timezone.now()
    claimed = WebhookDelivery.objects.filter(pk=delivery_id, status=WebhookDelivery.Status.PENDING,
                                             next_attempt_at__lte=now, endpoint__is_active=True).update(
        status=WebhookDelivery.Status.SENDING, claimed_at=now, attempts=F("attempts") + 1)
    if not claimed:
        return None
    delivery = WebhookDelivery.objects.select_related("endpoint").get(pk=delivery_id)
    endpoint = delivery.endpoint
    code, error = None, ""
    try:
        url_check(endpoint.url)
        # stream=True and close(): only the status matters, a receiver's (possibly huge) body is never read.
        response = requests.post(endpoint.url, data=delivery.payload.encode(), timeout=settings.WEBHOOKS_TIMEOUT,
                                 allow_redirects=False, stream=True,
                                 headers=signed_headers(secret=endpoint.secret, event_id=delivery.event_id, body=delivery.payload))
        code = response.status_code
        response.close()
        if not 200 <= code < 300:
            error = _("The endpoint answered %(code)s.") % {"code": code}
    except ValidationError as exc:
        error = exc.messages[0]
    except requests.RequestException as exc:
        error = type(exc).__name__
    return _record(delivery, code=code, error=error)


@transaction.atomic
def _record(delivery: WebhookDelivery, *, code: int | None, error: str) -> str:
    endpoint = WebhookEndpoint.objects.select_for_update().get(pk=delivery.endpoint_id)
    now = timezone.now()
    if not error:
        WebhookDelivery.objects.filter(pk=delivery.pk).update(status=WebhookDelivery.Status.DELIVERED, delivered_at=now,
                                                              last_status_code=code, last_error="")
        WebhookEndpoint.objects.filter(pk=endpoint.pk).update(consecutive_failures=0)
        return WebhookDelivery.Status.DELIVERED
    final = delivery.attempts >= settings.WEBHOOKS_MAX_ATTEMPTS
    status = WebhookDelivery.Status.FAILED if final else WebhookDelivery.Status.PENDING
    WebhookDelivery.objects.filter(pk=delivery.pk).update(status=status, last_status_code=code, last_error=error[:255],
                                                          next_attempt_at=now + _backoff(delivery.attempts))
    failures = endpoint.consecutive_failures + 1
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(consecutive_failures=failures)
    if failures >= settings.WEBHOOKS_DISABLE_AFTER_FAILURES and endpoint.is_active:
        reason = _("Disabled after %(count)d failed attempts in a row; last: %(error)s") % {"count": failures, "error": error}
        WebhookEndpoint.objects.filter(pk=endpoint.pk).update(is_active=False, disabled_reason=reason[:255])
        _forget_endpoints()
        activity_record(action="webhook_disabled", customer=endpoint.customer, details={"url": endpoint.url, "reason": reason})
    return status


def webhooks_sweep(*, now=None) -> int:
    """Queue due deliveries of active endpoints; put back rows stuck in "sending" (worker lost)."""
    from .tasks import webhook_deliver_task

    now = now or timezone.now()
    WebhookDelivery.objects.filter(status=WebhookDelivery.Status.SENDING,
                                   claimed_at__lt=now - timedelta(seconds=settings.NOTIFICATIONS_OUTBOX_STUCK_SECONDS)
                                   ).update(status=WebhookDelivery.Status.PENDING)
    due = list(WebhookDelivery.objects.filter(status=WebhookDelivery.Status.PENDING, next_attempt_at__lte=now,
                                              endpoint__is_active=True).order_by("next_attempt_at")
               .values_list("pk", flat=True)[:settings.NOTIFICATIONS_OUTBOX_SWEEP_BATCH])
    for delivery_id in due:
        enqueue_task_safely(webhook_deliver_task, delivery_id=delivery_id)
    return len(due)
