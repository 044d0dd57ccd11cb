"""Stripe Checkout through the official SDK. Offered only when STRIPE_SECRET_KEY and
STRIPE_WEBHOOK_SECRET are set. Amounts go to Stripe in minor units (JPY has none)."""
from decimal import Decimal

import stripe
from django.conf import settings
from django.utils.translation import gettext_lazy as _

from billing.money import minor_units, quantize

from ..base import ChargeResult, Gateway, GatewayError, GatewayEvent, MethodDetails, StartResult, WebhookRejected

# Tests replace this with a client replaying recorded responses; None means the SDK's own HTTP client.
HTTP_CLIENT: stripe.HTTPClient | None = None


def to_minor(amount: Decimal, currency: str) -> int:
    return int(quantize(amount, currency).scaleb(minor_units(currency)))


def from_minor(value: int, currency: str) -> Decimal:
    return quantize(Decimal(value).scaleb(-minor_units(currency)), currency)


def stripe_client() -> stripe.StripeClient:
    return stripe.StripeClient(settings.STRIPE_SECRET_KEY, http_client=HTTP_CLIENT, max_network_retries=2)


def _card_details(payment_method, customer_id: str = "") -> MethodDetails | None:
    if not payment_method or isinstance(payment_method, str):
        return None
    card = payment_method.get("card") or {}
    return MethodDetails(
        token=payment_method["id"], brand=card.get("brand", ""), last4=card.get("last4", ""),
        exp_month=card.get("exp_month"), exp_year=card.get("exp_year"),
        kind="card" if card else "wallet", gateway_customer_id=customer_id or payment_method.get("customer") or "",
    )


class StripeCheckoutGateway(Gateway):
    code = "stripe"
    name = _("Card (Stripe)")
    supports_saved_methods = True

    def is_configured(self) -> bool:
        return bool(settings.STRIPE_SECRET_KEY and settings.STRIPE_WEBHOOK_SECRET)

    def _customer_id(self, customer) -> str:
        from ..models import GatewayCustomer

        known = GatewayCustomer.objects.filter(customer=customer, gateway=self.code).first()
        if known:
            return known.external_id
        created = stripe_client().v1.customers.create(
            params={"metadata": {"client_id": str(customer.pk)}},
            options={"idempotency_key": f"portal-customer:{customer.pk}"},
        )
        GatewayCustomer.objects.get_or_create(customer=customer, gateway=self.code, defaults={"external_id": created.id})
        return created.id

    def start_payment(self, *, attempt, description, success_url, cancel_url) -> StartResult:
        reference = str(attempt.reference)
        metadata = {"attempt": reference, "client_id": str(attempt.customer_id)}
        params: dict = {
            "client_reference_id": reference,
            "success_url": success_url,
            "cancel_url": cancel_url,
            "metadata": metadata,
        }
        try:
            if attempt.purpose == "setup":
                params.update(mode="setup", currency=attempt.currency.lower(), customer=self._customer_id(attempt.customer),
                              payment_method_types=["card"], setup_intent_data={"metadata": metadata})
            else:
                params.update(
                    mode="payment",
                    line_items=[{"quantity": 1, "price_data": {
                        "currency": attempt.currency.lower(),
                        "unit_amount": to_minor(attempt.amount, attempt.currency),
                        "product_data": {"name": description},
                    }}],
                    payment_intent_data={"metadata": metadata},
                )
                if attempt.save_method:
                    params["customer"] = self._customer_id(attempt.customer)
                    params["payment_intent_data"]["setup_future_usage"] = "off_session"
                    params["metadata"] = {**metadata, "save_method": "1"}
            session = stripe_client().v1.checkout.sessions.create(
                params=params, options={"idempotency_key": f"checkout:{reference}"}
            )
        except stripe.StripeError as exc:
            raise GatewayError(exc.user_message or str(_("The card processor is unavailable, please try again later.")))
        return StartResult(redirect_url=session.url, external_id=session.id)

    def parse_webhook(self, *, body, headers) -> list[GatewayEvent]:
        try:
            event = stripe.Webhook.construct_event(
                body, headers.get("Stripe-Signature", ""), settings.STRIPE_WEBHOOK_SECRET,
                tolerance=settings.PAYMENT_WEBHOOK_TOLERANCE,
            )
        except stripe.SignatureVerificationError as exc:
            result = "stale" if "tolerance" in str(exc) else "bad_signature"
            raise WebhookRejected(result, str(exc))
        except ValueError as exc:
            raise WebhookRejected("malformed", str(exc))
        try:
            return [self._translate(event.to_dict())]
        except (KeyError, TypeError, AttributeError) as exc:
            raise WebhookRejected("malformed", f"Unexpected {event.get('type')} payload: {exc}")
        except stripe.StripeError as exc:
            raise GatewayError(str(exc))

    def _translate(self, event) -> GatewayEvent:
        obj = event["data"]["object"]
        kind_of = event["type"]
        base = {"event_id": event["id"], "event_type": kind_of}
        metadata = obj.get("metadata") or {}
        reference = metadata.get("attempt") or obj.get("client_reference_id") or ""
        if kind_of in ("checkout.session.completed", "checkout.session.async_payment_succeeded"):
            if obj["mode"] == "setup":
                intent = stripe_client().v1.setup_intents.retrieve(obj["setup_intent"], params={"expand": ["payment_method"]}).to_dict()
                return GatewayEvent(**base, kind="method_saved", reference=reference,
                                    method=_card_details(intent.get("payment_method"), obj.get("customer") or ""))
            if obj.get("payment_status") != "paid":
                return GatewayEvent(**base, kind="pending", reference=reference)
            currency = obj["currency"].upper()
            method = None
            if metadata.get("save_method") == "1":
                intent = stripe_client().v1.payment_intents.retrieve(obj["payment_intent"], params={"expand": ["payment_method"]}).to_dict()
                method = _card_details(intent.get("payment_method"), obj.get("customer") or "")
            return GatewayEvent(**base, kind="succeeded", reference=reference, transaction_id=obj["payment_intent"],
                                amount=from_minor(obj["amount_total"], currency), currency=currency, method=method)
        if kind_of == "payment_intent.succeeded":
            currency = obj["currency"].upper()
            return GatewayEvent(**base, kind="succeeded", reference=reference, transaction_id=obj["id"],
                                amount=from_minor(obj["amount_received"], currency), currency=currency)
        if kind_of == "payment_intent.payment_failed":
            error = obj.get("last_payment_error") or {}
            return GatewayEvent(**base, kind="failed", reference=reference, transaction_id=obj["id"],
                                failure_message=error.get("message", ""))
        if kind_of in ("checkout.session.async_payment_failed", "checkout.session.expired"):
            return GatewayEvent(**base, kind="failed", reference=reference, failure_message=kind_of)
        return GatewayEvent(**base, kind="ignored", reference=reference)

    def refund(self, *, attempt, amount: Decimal, idempotency_key: str) -> str:
        try:
            refund = stripe_client().v1.refunds.create(
                params={"payment_intent": attempt.transaction_id, "amount": to_minor(amount, attempt.currency)},
                options={"idempotency_key": idempotency_key},
            )
        except stripe.StripeError as exc:
            raise GatewayError(exc.user_message or str(exc))
        return refund.id

    def charge_saved_method(self, *, attempt, method) -> ChargeResult:
        from ..models import GatewayCustomer

        customer_id = GatewayCustomer.objects.filter(customer_id=attempt.customer_id, gateway=self.code).values_list("external_id", flat=True).first()
        try:
            intent = stripe_client().v1.payment_intents.create(
                params={
                    "amount": to_minor(attempt.amount, attempt.currency), "currency": attempt.currency.lower(),
                    "customer": customer_id, "payment_method": method.token, "off_session": True, "confirm": True,
                    "metadata": {"attempt": str(attempt.reference), "client_id": str(attempt.customer_id)},
                },
                options={"idempotency_key": f"charge:{attempt.reference}"},
            )
        except stripe.CardError as exc:
            intent = exc.error.to_dict().get("payment_intent") if exc.error else None
            intent_id = (intent or {}).get("id", "")
            return ChargeResult(status="failed", transaction_id=intent_id, failure_message=exc.user_message or str(exc))
        except stripe.StripeError as exc:
            return ChargeResult(status="failed", failure_message=exc.user_message or str(exc))
        if intent.status == "succeeded":
            return ChargeResult(status="succeeded", transaction_id=intent.id)
        if intent.status == "processing":
            return ChargeResult(status="pending", transaction_id=intent.id)
        return ChargeResult(status="failed", transaction_id=intent.id, failure_message=intent.status)

    def delete_saved_method(self, *, method) -> None:
        try:
            stripe_client().v1.payment_methods.detach(method.token)
        except stripe.InvalidRequestError:
            pass  # already detached at Stripe
