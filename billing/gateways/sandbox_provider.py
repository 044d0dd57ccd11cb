"""The built-in sandbox payment provider: its "API", hosted-page logic and webhook sender.

It stands in for an external provider, so it talks to the portal only the way a real one does: the
portal calls its API (checkout_create, card_charge, charge_refund, card_detach) and it reports
results by HMAC-signed webhooks POSTed over HTTP to the portal's webhook URL. Events are written to
an outbox in the same transaction as the charge and re-posted until the portal answers 2xx.

Test cards (any future expiry, any 3-digit CVC):
  4242 4242 4242 4242 / 5555 5555 5555 4444  succeed
  4000 0000 0000 0002                        declined
  4000 0000 0000 0077                        pending, then succeeded after SANDBOX_PENDING_DELAY seconds
                                             (posted by the beat sweeper once that time has passed)
"""
from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from datetime import timedelta
from decimal import Decimal

import requests
from django.conf import settings
from django.db import transaction
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext_noop

from .models import SandboxCard, SandboxCharge, SandboxCheckout, SandboxWebhookOutbox

SIGNATURE_HEADER = "Sandbox-Signature"
CHECKOUT_LIFETIME = timedelta(hours=2)
DELIVERY_TIMEOUT = 5  # seconds; a slow portal is retried from the outbox, never waited on
SUCCEED, DECLINE, PENDING = "succeed", "decline", "pending"
TEST_CARDS = {
    "4242424242424242": ("visa", SUCCEED),
    "5555555555554444": ("mastercard", SUCCEED),
    "4000000000000002": ("visa", DECLINE),
    "4000000000000077": ("visa", PENDING),
}
DECLINE_MESSAGE = gettext_noop("Your card was declined.")


class SandboxCardError(ValueError):
    pass


def _new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(12)}"


def sign(body: str, *, secret: str | None = None, timestamp: int | None = None) -> str:
    timestamp = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new((secret or settings.SANDBOX_WEBHOOK_SECRET).encode(), f"{timestamp}.{body}".encode(), hashlib.sha256)
    return f"t={timestamp},v1={digest.hexdigest()}"


# --- API the portal calls ---------------------------------------------------------------------------

def checkout_create(*, mode: str, merchant_reference: str, customer_ref: str, amount: Decimal, currency: str,
                    description: str, allow_save: bool, success_url: str, cancel_url: str) -> SandboxCheckout:
    return SandboxCheckout.objects.create(
        id=_new_id("cs"), mode=mode, merchant_reference=merchant_reference, customer_ref=customer_ref,
        amount=amount, currency=currency, description=description[:255], allow_save=allow_save,
        success_url=success_url, cancel_url=cancel_url, expires_at=timezone.now() + CHECKOUT_LIFETIME,
    )


def card_charge(*, card_token: str, amount: Decimal, currency: str, merchant_reference: str) -> SandboxCharge:
    """Off-session charge of a saved card; the result comes back at once and again by webhook."""
    with transaction.atomic():
        card = SandboxCard.objects.filter(pk=card_token, detached=False).first()
        if card is None:
            raise SandboxCardError(gettext_noop("No such card."))
        charge = _charge_create(card=card, checkout=None, amount=amount, currency=currency,
                                merchant_reference=merchant_reference, behaviour=card.behaviour)
    return charge


def charge_refund(*, transaction_id: str, amount: Decimal) -> str:
    with transaction.atomic():
        charge = SandboxCharge.objects.select_for_update().get(pk=transaction_id)
        if charge.status != "succeeded" or charge.refunded_amount + amount > charge.amount:
            raise SandboxCardError(gettext_noop("Refund exceeds the captured amount."))
        charge.refunded_amount += amount
        charge.save(update_fields=["refunded_amount"])
        refund_id = _new_id("re")
        _event_queue("refund.succeeded", {
            "reference": charge.merchant_reference, "transaction": charge.pk, "refund": refund_id,
            "amount": str(amount), "currency": charge.currency,
        })
    return refund_id


def card_detach(*, card_token: str) -> None:
    SandboxCard.objects.filter(pk=card_token).update(detached=True)


# --- Hosted page --------------------------------------------------------------------------------------

def card_validate(*, number: str, exp_month: int, exp_year: int, cvc: str) -> tuple[str, str]:
    """Return (brand, behaviour) for a test card or raise SandboxCardError with the reason."""
    digits = "".join(ch for ch in number if ch.isdigit())
    if digits not in TEST_CARDS:
        raise SandboxCardError(gettext_noop("Use one of the sandbox test card numbers."))
    today = timezone.now().date()
    if not (1 <= exp_month <= 12) or (exp_year, exp_month) < (today.year, today.month):
        raise SandboxCardError(gettext_noop("The card has expired."))
    if not (cvc.isdigit() and len(cvc) in (3, 4)):
        raise SandboxCardError(gettext_noop("The security code is invalid."))
    return TEST_CARDS[digits]


def checkout_pay(*, checkout_id: str, number: str, exp_month: int, exp_year: int, cvc: str, save_card: bool) -> str:
    """Process the form of the hosted page. Returns "succeeded", "pending" or "declined"."""
    brand, behaviour = card_validate(number=number, exp_month=exp_month, exp_year=exp_year, cvc=cvc)
    with transaction.atomic():
        checkout = SandboxCheckout.objects.select_for_update().get(pk=checkout_id)
        if checkout.status != SandboxCheckout.Status.OPEN or checkout.expires_at < timezone.now():
            raise SandboxCardError(gettext_noop("This checkout is no longer open."))
        digits = "".join(ch for ch in number if ch.isdigit())
        card = None
        if checkout.mode == SandboxCheckout.Mode.SETUP or (save_card and checkout.allow_save):
            card = SandboxCard.objects.create(
                id=_new_id("card"), customer_ref=checkout.customer_ref, brand=brand, last4=digits[-4:],
                exp_month=exp_month, exp_year=exp_year, behaviour=behaviour,
            )
        if checkout.mode == SandboxCheckout.Mode.SETUP:
            if behaviour == DECLINE:
                raise SandboxCardError(DECLINE_MESSAGE)
            checkout.status = SandboxCheckout.Status.COMPLETE
            checkout.save(update_fields=["status"])
            _event_queue("method.saved", {"reference": checkout.merchant_reference, "card": _card_json(card)})
            return "succeeded"
        if behaviour == DECLINE:
            # A declined payment leaves the checkout open for another card, as hosted pages do.
            _event_queue("payment.failed", {
                "reference": checkout.merchant_reference, "transaction": "", "amount": str(checkout.amount),
                "currency": checkout.currency, "failure_message": DECLINE_MESSAGE,
            })
            return "declined"
        charge = _charge_create(card=card, checkout=checkout, amount=checkout.amount, currency=checkout.currency,
                                merchant_reference=checkout.merchant_reference, behaviour=behaviour)
        checkout.status = SandboxCheckout.Status.PROCESSING if charge.status == "pending" else SandboxCheckout.Status.COMPLETE
        checkout.save(update_fields=["status"])
        return charge.status


def checkout_cancel(*, checkout_id: str) -> SandboxCheckout:
    with transaction.atomic():
        checkout = SandboxCheckout.objects.select_for_update().get(pk=checkout_id)
        if checkout.status == SandboxCheckout.Status.OPEN:
            checkout.status = SandboxCheckout.Status.CANCELLED
            checkout.save(update_fields=["status"])
            _event_queue("payment.cancelled", {"reference": checkout.merchant_reference, "transaction": "",
                                               "amount": str(checkout.amount), "currency": checkout.currency,
                                               "failure_message": "Cancelled by the customer."})
    return checkout


def _card_json(card: SandboxCard | None) -> dict | None:
    if card is None:
        return None
    return {"token": card.pk, "brand": card.brand, "last4": card.last4, "exp_month": card.exp_month,
            "exp_year": card.exp_year, "customer": card.customer_ref}


def _charge_create(*, card, checkout, amount, currency, merchant_reference, behaviour) -> SandboxCharge:
    if behaviour == DECLINE:
        charge = SandboxCharge.objects.create(id=_new_id("txn"), checkout=checkout, card=card, amount=amount,
                                              currency=currency, merchant_reference=merchant_reference, status="declined")
        _event_queue("payment.failed", {"reference": merchant_reference, "transaction": charge.pk, "amount": str(amount),
                                        "currency": currency, "failure_message": DECLINE_MESSAGE})
        return charge
    status = "pending" if behaviour == PENDING else "succeeded"
    charge = SandboxCharge.objects.create(id=_new_id("txn"), checkout=checkout, card=card, amount=amount,
                                          currency=currency, merchant_reference=merchant_reference, status=status)
    data = {"reference": merchant_reference, "transaction": charge.pk, "amount": str(amount), "currency": currency,
            "card": _card_json(card)}
    if status == "pending":
        _event_queue("payment.pending", data)
        _event_queue("payment.succeeded", data, delay=settings.SANDBOX_PENDING_DELAY, settle_charge=charge.pk)
    else:
        _event_queue("payment.succeeded", data)
    return charge


def _event_queue(event_type: str, data: dict, *, delay: int = 0, settle_charge: str = "") -> SandboxWebhookOutbox:
    event_id = _new_id("evt")
    payload = {"id": event_id, "type": event_type, "created": int(time.time()), "data": data}
    if settle_charge:
        payload["settles"] = settle_charge
    row = SandboxWebhookOutbox.objects.create(
        event_id=event_id, event_type=event_type, payload=payload,
        deliver_after=timezone.now() + timedelta(seconds=delay),
    )
    # A delayed event (and every retry) is left to the beat sweeper, which posts rows once their
    # deliver_after has passed. No Celery countdown: with the broker's short visibility timeout a
    # worker holding a countdown task unacked gets it re-delivered every timeout, multiplying copies.
    if not delay:
        transaction.on_commit(lambda: webhook_deliver(outbox_id=row.pk))
    return row


# --- Webhook sender ----------------------------------------------------------------------------------

def webhook_url() -> str:
    return settings.PORTAL_BASE_URL + reverse("gateways:webhook", kwargs={"gateway_code": "sandbox"})


def webhook_deliver(*, outbox_id: int, now=None) -> bool:
    """POST one due event; True when the portal acknowledged it. Safe to run from several workers."""
    now = now or timezone.now()
    with transaction.atomic():
        row = (SandboxWebhookOutbox.objects.select_for_update(skip_locked=True)
               .filter(pk=outbox_id, delivered_at__isnull=True, deliver_after__lte=now).first())
        if row is None:
            return False
        if row.payload.get("settles"):
            SandboxCharge.objects.filter(pk=row.payload["settles"], status="pending").update(status="succeeded")
            SandboxCheckout.objects.filter(sandboxcharge__pk=row.payload["settles"]).update(status=SandboxCheckout.Status.COMPLETE)
        body = json.dumps(row.payload, separators=(",", ":"), sort_keys=True)
        row.attempts += 1
        try:
            response = requests.post(
                webhook_url(), data=body.encode(), timeout=DELIVERY_TIMEOUT,
                headers={"Content-Type": "application/json", SIGNATURE_HEADER: sign(body)},
            )
            row.last_status = response.status_code
            row.last_error = "" if response.ok else response.text[:500]
        except requests.RequestException as exc:
            row.last_status = None
            row.last_error = str(exc)[:500]
        if row.last_status is not None and 200 <= row.last_status < 300:
            row.delivered_at = timezone.now()
        else:
            # Exponential back-off like real providers: 1, 2, 4 ... minutes, capped at an hour.
            row.deliver_after = timezone.now() + timedelta(minutes=min(2 ** (row.attempts - 1), 60))
        row.save()
        return row.delivered_at is not None


def webhooks_deliver_due(*, now=None, limit: int = 100) -> int:
    now = now or timezone.now()
    due = list(SandboxWebhookOutbox.objects.filter(delivered_at__isnull=True, deliver_after__lte=now)
               .order_by("deliver_after").values_list("pk", flat=True)[:limit])
    return sum(webhook_deliver(outbox_id=pk, now=now) for pk in due)
