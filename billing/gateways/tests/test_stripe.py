"""Stripe Checkout, entirely offline: the SDK's HTTP client is replaced by one replaying recorded
responses (stripe_responses/*.json), and webhooks are signed with the SDK's own helper."""
import json
import time
from decimal import Decimal
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import pytest
import stripe
from django.urls import reverse

from billing.gateways import services
from billing.gateways.models import GatewayCustomer, PaymentAttempt, SavedPaymentMethod, WebhookDelivery
from billing.gateways.providers import stripe_checkout
from billing.gateways.selectors import gateways_available
from billing.models import Invoice, Payment

from .factories import GatewayConfigFactory, SavedPaymentMethodFactory

RESPONSES = Path(__file__).parent / "stripe_responses"
SECRET = "whsec_test_portal"
URL = reverse("gateways:webhook", kwargs={"gateway_code": "stripe"})


class RecordedHTTPClient(stripe.HTTPClient):
    """Answers each (method, path) with a recorded JSON file and keeps every request for assertions."""

    name = "recorded"

    def __init__(self, routes: dict):
        super().__init__()
        self.routes = routes
        self.calls = []

    def request(self, method, url, headers, post_data=None, *, _usage=None):
        parts = urlsplit(url)
        params = dict(parse_qsl(post_data.decode() if isinstance(post_data, bytes) else (post_data or parts.query)))
        self.calls.append({"method": method.upper(), "path": parts.path, "params": params, "headers": dict(headers or {})})
        status, name = self.routes[(method.upper(), parts.path)]
        return (RESPONSES / name).read_text(), status, {"Request-Id": f"req_{len(self.calls)}"}

    def close(self):
        pass


@pytest.fixture
def stripe_on(settings, currencies):
    settings.STRIPE_SECRET_KEY = "sk_test_portal"
    settings.STRIPE_WEBHOOK_SECRET = SECRET
    return GatewayConfigFactory(code="stripe", position=2)


@pytest.fixture
def recorded(monkeypatch):
    def install(routes: dict) -> RecordedHTTPClient:
        client = RecordedHTTPClient(routes)
        monkeypatch.setattr(stripe_checkout, "HTTP_CLIENT", client)
        return client

    return install


def return_urls(attempt):
    return f"http://testserver/pay/attempts/{attempt.reference}/", f"http://testserver/pay/attempts/{attempt.reference}/?cancelled=1"


def start(customer, invoice, **kwargs):
    return services.payment_start(customer=customer, invoice=invoice, gateway_code="stripe", return_url_for=return_urls, **kwargs)


def webhook(client, event: dict, *, secret=SECRET, timestamp=None):
    payload = json.dumps(event)
    header = stripe.WebhookSignature.generate_signature_header(payload, secret, timestamp=timestamp)
    return client.post(URL, data=payload, content_type="application/json", HTTP_STRIPE_SIGNATURE=header)


def session_completed(attempt, *, pi="pi_3RecTest001", save=False, amount_total=1050, event_id="evt_1Sess"):
    metadata = {"attempt": str(attempt.reference), "client_id": str(attempt.customer_id)}
    if save:
        metadata["save_method"] = "1"
    return {"id": event_id, "object": "event", "api_version": "2025-01-27.acacia", "created": int(time.time()),
            "type": "checkout.session.completed", "livemode": False,
            "data": {"object": {"id": attempt.external_id or "cs_test_a1B2c3D4e5", "object": "checkout.session", "mode": "payment",
                                "payment_status": "paid", "payment_intent": pi, "amount_total": amount_total,
                                "currency": attempt.currency.lower(), "customer": "cus_RecTest001" if save else None,
                                "client_reference_id": str(attempt.reference), "metadata": metadata}}}


def intent_succeeded(attempt, *, pi="pi_3RecTest001", amount=1050, event_id="evt_1PI"):
    return {"id": event_id, "object": "event", "created": int(time.time()), "type": "payment_intent.succeeded", "livemode": False,
            "data": {"object": {"id": pi, "object": "payment_intent", "amount": amount, "amount_received": amount,
                                "currency": attempt.currency.lower(), "status": "succeeded",
                                "metadata": {"attempt": str(attempt.reference)}}}}


@pytest.mark.django_db
def test_stripe_is_hidden_until_both_keys_are_configured(settings, customer, currencies):
    GatewayConfigFactory(code="stripe")
    settings.STRIPE_SECRET_KEY, settings.STRIPE_WEBHOOK_SECRET = "sk_test_x", ""
    assert "stripe" not in [g.code for g in gateways_available(customer=customer, currency="EUR")]
    settings.STRIPE_WEBHOOK_SECRET = SECRET
    assert "stripe" in [g.code for g in gateways_available(customer=customer, currency="EUR")]


@pytest.mark.django_db
def test_checkout_session_is_created_for_the_invoice_amount_and_currency(stripe_on, recorded, customer, make_invoice):
    http = recorded({("POST", "/v1/checkout/sessions"): (200, "checkout_session.json")})
    invoice = make_invoice(customer, "10.50")

    started = start(customer, invoice)

    (call,) = http.calls
    params, ref = call["params"], str(started.attempt.reference)
    assert params["mode"] == "payment"
    assert params["line_items[0][price_data][currency]"] == "eur"
    assert params["line_items[0][price_data][unit_amount]"] == "1050"
    assert params["line_items[0][quantity]"] == "1"
    assert params["line_items[0][price_data][product_data][name]"] == f"Invoice {invoice.number}"
    assert params["client_reference_id"] == ref and params["metadata[attempt]"] == ref
    assert params["payment_intent_data[metadata][attempt]"] == ref
    assert params["success_url"] == f"http://testserver/pay/attempts/{ref}/"
    assert "customer" not in params and "payment_intent_data[setup_future_usage]" not in params
    assert call["headers"]["Idempotency-Key"] == f"checkout:{ref}"
    assert call["headers"]["Authorization"] == "Bearer sk_test_portal"
    assert started.result.redirect_url.startswith("https://checkout.stripe.com/")
    assert PaymentAttempt.objects.get(pk=started.attempt.pk).external_id == "cs_test_a1B2c3D4e5"


@pytest.mark.django_db
def test_jpy_is_sent_without_minor_units(stripe_on, recorded, customer, make_invoice):
    http = recorded({("POST", "/v1/checkout/sessions"): (200, "checkout_session.json")})
    invoice = make_invoice(customer, "1500", currency="JPY")

    start(customer, invoice)

    assert http.calls[0]["params"]["line_items[0][price_data][unit_amount]"] == "1500"
    assert http.calls[0]["params"]["line_items[0][price_data][currency]"] == "jpy"


@pytest.mark.django_db
def test_saving_the_card_creates_a_stripe_customer_and_asks_for_off_session_use(stripe_on, recorded, customer, make_invoice):
    http = recorded({("POST", "/v1/customers"): (200, "customer.json"),
                     ("POST", "/v1/checkout/sessions"): (200, "checkout_session.json")})

    start(customer, make_invoice(customer, "10.50"), save_method=True)
    reused = stripe_checkout.StripeCheckoutGateway()._customer_id(customer)

    assert reused == "cus_RecTest001"
    assert [c["path"] for c in http.calls] == ["/v1/customers", "/v1/checkout/sessions"]
    session = http.calls[1]["params"]
    assert session["customer"] == "cus_RecTest001"
    assert session["payment_intent_data[setup_future_usage]"] == "off_session"
    assert GatewayCustomer.objects.get(customer=customer).external_id == "cus_RecTest001"


@pytest.mark.django_db
def test_webhook_signature_is_verified_with_the_signing_secret(client, stripe_on, recorded, customer, make_invoice):
    recorded({("POST", "/v1/checkout/sessions"): (200, "checkout_session.json")})
    attempt = start(customer, make_invoice(customer, "10.50")).attempt

    forged = webhook(client, session_completed(attempt), secret="whsec_someone_else")
    stale = webhook(client, session_completed(attempt), timestamp=int(time.time()) - 3600)
    unsigned = client.post(URL, data=json.dumps(session_completed(attempt)), content_type="application/json")

    assert (forged.status_code, stale.status_code, unsigned.status_code) == (400, 400, 400)
    assert list(WebhookDelivery.objects.order_by("pk").values_list("result", flat=True)) == ["bad_signature", "stale", "bad_signature"]
    assert not Payment.objects.exists()
    assert webhook(client, session_completed(attempt)).status_code == 200
    assert Payment.objects.count() == 1


@pytest.mark.django_db
def test_session_completed_and_payment_intent_succeeded_credit_once(client, stripe_on, recorded, customer, make_invoice):
    recorded({("POST", "/v1/checkout/sessions"): (200, "checkout_session.json")})
    invoice = make_invoice(customer, "10.50")
    attempt = start(customer, invoice).attempt

    responses = [webhook(client, session_completed(attempt)), webhook(client, intent_succeeded(attempt)),
                 webhook(client, session_completed(attempt)), webhook(client, intent_succeeded(attempt))]

    assert [r.content for r in responses] == [b"processed", b"duplicate", b"duplicate", b"duplicate"]
    payment = Payment.objects.get()
    assert (payment.idempotency_key, payment.amount, payment.currency) == ("stripe:pi_3RecTest001", Decimal("10.50"), "EUR")
    assert Invoice.objects.get(pk=invoice.pk).status == Invoice.Status.PAID


@pytest.mark.django_db
def test_payment_intent_succeeded_alone_credits_and_ignores_unrelated_events(client, stripe_on, recorded, customer, make_invoice):
    recorded({("POST", "/v1/checkout/sessions"): (200, "checkout_session.json")})
    attempt = start(customer, make_invoice(customer, "10.50")).attempt
    other = {"id": "evt_x", "object": "event", "type": "customer.created", "created": int(time.time()),
             "data": {"object": {"id": "cus_1", "object": "customer", "metadata": {}}}}

    assert webhook(client, other).content == b"ignored"
    assert webhook(client, intent_succeeded(attempt)).content == b"processed"
    assert Payment.objects.get().idempotency_key == "stripe:pi_3RecTest001"


@pytest.mark.django_db
def test_completed_session_saves_the_card_for_off_session_use(client, stripe_on, recorded, customer, make_invoice):
    http = recorded({("POST", "/v1/customers"): (200, "customer.json"),
                     ("POST", "/v1/checkout/sessions"): (200, "checkout_session.json"),
                     ("GET", "/v1/payment_intents/pi_3RecTest001"): (200, "payment_intent_with_method.json")})
    attempt = start(customer, make_invoice(customer, "10.50"), save_method=True).attempt

    assert webhook(client, session_completed(attempt, save=True)).status_code == 200

    method = SavedPaymentMethod.objects.get(customer=customer)
    assert (method.gateway, method.token, method.brand, method.last4, method.expiry) == ("stripe", "pm_1RecTestCard", "visa", "4242", "08/31")
    assert http.calls[-1]["params"] == {"expand[0]": "payment_method"}


@pytest.mark.django_db
def test_refund_goes_to_stripe_in_minor_units(client, stripe_on, recorded, customer, make_invoice):
    from accounts.tests.factories import StaffUserFactory

    http = recorded({("POST", "/v1/checkout/sessions"): (200, "checkout_session.json"),
                     ("POST", "/v1/refunds"): (200, "refund.json")})
    attempt = start(customer, make_invoice(customer, "10.50")).attempt
    webhook(client, session_completed(attempt))
    attempt.refresh_from_db()

    refund_id = services.attempt_refund(attempt=attempt, amount=Decimal("10.50"), actor=StaffUserFactory())

    assert refund_id == "re_3RecTest001"
    assert http.calls[-1]["params"] == {"payment_intent": "pi_3RecTest001", "amount": "1050"}
    # The key is the refund's own, reserved before the call: not built from the attempt's changing state.
    assert http.calls[-1]["headers"]["Idempotency-Key"] == f"refund:{attempt.payment_id}:1"
    attempt.refresh_from_db()
    assert attempt.status == "refunded" and attempt.refunded_amount == Decimal("10.50")
    with pytest.raises(services.GatewayError):
        services.attempt_refund(attempt=attempt, amount=Decimal("0.01"), actor=None)


@pytest.mark.django_db
def test_off_session_charge_of_a_saved_card(stripe_on, recorded, customer):
    http = recorded({("POST", "/v1/payment_intents"): (200, "payment_intent_off_session.json")})
    GatewayCustomer.objects.create(customer=customer, gateway="stripe", external_id="cus_RecTest001")
    method = SavedPaymentMethodFactory(customer=customer, gateway="stripe", token="pm_1RecTestCard", is_default=True)
    services.card_auto_top_up_configure(customer=customer, enabled=True, method=method, monthly_limit=Decimal("100"))

    assert services.card_auto_top_up_charge(customer=customer, needed_amount=Decimal("20"), reason="test") is True

    params = http.calls[0]["params"]
    assert (params["amount"], params["currency"], params["customer"], params["payment_method"]) == ("2000", "eur", "cus_RecTest001", "pm_1RecTestCard")
    assert params["off_session"] == "true" and params["confirm"] == "true"
    assert Payment.objects.get().idempotency_key == "stripe:pi_3RecTestOff01"


@pytest.mark.django_db
def test_off_session_decline_is_recorded_as_failed(stripe_on, recorded, customer):
    recorded({("POST", "/v1/payment_intents"): (402, "card_declined_error.json")})
    method = SavedPaymentMethodFactory(customer=customer, gateway="stripe", token="pm_1RecTestCard", is_default=True)
    services.card_auto_top_up_configure(customer=customer, enabled=True, method=method, monthly_limit=Decimal("100"))

    assert services.card_auto_top_up_charge(customer=customer, needed_amount=Decimal("20"), reason="test") is False

    attempt = PaymentAttempt.objects.get(purpose="autopay")
    assert attempt.status == "failed" and "insufficient funds" in attempt.failure_message
    assert not Payment.objects.exists()


@pytest.mark.django_db
def test_adding_a_card_uses_a_setup_session_and_saves_the_method(client, stripe_on, recorded, customer):
    http = recorded({("POST", "/v1/customers"): (200, "customer.json"),
                     ("POST", "/v1/checkout/sessions"): (200, "checkout_session.json"),
                     ("GET", "/v1/setup_intents/seti_1RecTest001"): (200, "setup_intent.json")})
    attempt = services.method_setup_start(customer=customer, gateway_code="stripe", return_url_for=return_urls).attempt
    session = http.calls[1]["params"]
    assert (session["mode"], session["currency"], session["customer"]) == ("setup", "eur", "cus_RecTest001")
    event = {"id": "evt_setup", "object": "event", "created": int(time.time()), "type": "checkout.session.completed",
             "data": {"object": {"id": "cs_test_a1B2c3D4e5", "object": "checkout.session", "mode": "setup",
                                 "setup_intent": "seti_1RecTest001", "customer": "cus_RecTest001",
                                 "client_reference_id": str(attempt.reference), "metadata": {"attempt": str(attempt.reference)}}}}

    assert webhook(client, event).content == b"processed"
    assert webhook(client, event).content == b"duplicate"

    method = SavedPaymentMethod.objects.get(customer=customer)
    assert (method.token, str(method), method.expiry, method.is_default) == ("pm_1RecTestSetup", "Mastercard •••• 4444", "03/29", True)
    assert not Payment.objects.exists()
