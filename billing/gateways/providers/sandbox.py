"""Portal-side adapter of the built-in sandbox provider (see sandbox_provider.py for the provider)."""
import hashlib
import hmac
import json
import time
from decimal import Decimal, InvalidOperation

from django.conf import settings
from django.urls import reverse
from django.utils.translation import gettext_lazy as _

from .. import sandbox_provider
from ..base import ChargeResult, Gateway, GatewayError, GatewayEvent, MethodDetails, StartResult, WebhookRejected

EVENT_KINDS = {
    "payment.succeeded": "succeeded",
    "payment.failed": "failed",
    "payment.pending": "pending",
    "payment.cancelled": "cancelled",
    "refund.succeeded": "refunded",
    "method.saved": "method_saved",
}


def verify_signature(*, body: bytes, header: str, secret: str, tolerance: int, now: float | None = None) -> None:
    try:
        parts = dict(item.split("=", 1) for item in header.split(","))
        timestamp = int(parts["t"])
        signature = parts["v1"]
    except (KeyError, ValueError):
        raise WebhookRejected("bad_signature", "Missing or unreadable signature header.")
    expected = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, signature):
        raise WebhookRejected("bad_signature", "Signature does not match.")
    if abs((now or time.time()) - timestamp) > tolerance:
        raise WebhookRejected("stale", f"Timestamp {timestamp} is outside the {tolerance}s tolerance.")


class SandboxGateway(Gateway):
    code = "sandbox"
    name = _("Sandbox card (test payments)")
    supports_saved_methods = True

    def is_configured(self) -> bool:
        return settings.PAYMENT_SANDBOX_ENABLED

    def start_payment(self, *, attempt, description, success_url, cancel_url) -> StartResult:
        checkout = sandbox_provider.checkout_create(
            mode="setup" if attempt.purpose == "setup" else "payment",
            merchant_reference=str(attempt.reference), customer_ref=str(attempt.customer_id),
            amount=attempt.amount, currency=attempt.currency, description=description,
            allow_save=attempt.save_method, success_url=success_url, cancel_url=cancel_url,
        )
        return StartResult(
            redirect_url=reverse("gateways:sandbox_checkout", kwargs={"checkout_id": checkout.pk}),
            external_id=checkout.pk,
        )

    def parse_webhook(self, *, body, headers) -> list[GatewayEvent]:
        verify_signature(body=body, header=headers.get(sandbox_provider.SIGNATURE_HEADER, ""),
                         secret=settings.SANDBOX_WEBHOOK_SECRET, tolerance=settings.PAYMENT_WEBHOOK_TOLERANCE)
        try:
            payload = json.loads(body)
            data = payload["data"]
            event = GatewayEvent(
                event_id=str(payload["id"]), event_type=str(payload["type"]),
                kind=EVENT_KINDS.get(payload["type"], "ignored"), reference=str(data.get("reference", "")),
                transaction_id=str(data.get("transaction") or ""), currency=str(data.get("currency", "")),
                amount=Decimal(data["amount"]) if data.get("amount") is not None else None,
                failure_message=str(data.get("failure_message", "")),
            )
            card = data.get("card")
            if card:
                event.method = MethodDetails(token=card["token"], brand=card["brand"], last4=card["last4"],
                                             exp_month=int(card["exp_month"]), exp_year=int(card["exp_year"]))
        except (ValueError, KeyError, TypeError, InvalidOperation) as exc:
            raise WebhookRejected("malformed", f"Unreadable payload: {exc}")
        return [event]

    def refund(self, *, attempt, amount: Decimal, idempotency_key: str) -> str:
        try:
            return sandbox_provider.charge_refund(transaction_id=attempt.transaction_id, amount=amount)
        except (sandbox_provider.SandboxCardError, sandbox_provider.SandboxCharge.DoesNotExist) as exc:
            raise GatewayError(str(exc))

    def charge_saved_method(self, *, attempt, method) -> ChargeResult:
        try:
            charge = sandbox_provider.card_charge(card_token=method.token, amount=attempt.amount,
                                                  currency=attempt.currency, merchant_reference=str(attempt.reference))
        except sandbox_provider.SandboxCardError as exc:
            return ChargeResult(status="failed", failure_message=str(exc))
        if charge.status == "declined":
            return ChargeResult(status="failed", transaction_id=charge.pk, failure_message=sandbox_provider.DECLINE_MESSAGE)
        return ChargeResult(status=charge.status, transaction_id=charge.pk)

    def delete_saved_method(self, *, method) -> None:
        sandbox_provider.card_detach(card_token=method.token)
