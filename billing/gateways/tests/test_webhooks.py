import time
from decimal import Decimal

import pytest
from django.urls import reverse

from billing.gateways import services
from billing.gateways.models import PaymentAttempt, SavedPaymentMethod, WebhookDelivery
from billing.models import Invoice, Payment
from billing.selectors import balance_of
from billing.tests.concurrency import run_concurrently

from .conftest import sandbox_event, signed_headers

URL = reverse("gateways:webhook", kwargs={"gateway_code": "sandbox"})


def post(client, body: bytes, headers: dict):
    return client.post(URL, data=body, content_type="application/json",
                       **{f"HTTP_{k.upper().replace('-', '_')}": v for k, v in headers.items()})


@pytest.mark.django_db
def test_the_same_webhook_five_times_in_a_row_credits_once(client, sandbox_attempt):
    attempt = sandbox_attempt("25.00")
    body = sandbox_event(attempt)
    results = [post(client, body, signed_headers(body)) for _ in range(5)]

    assert [r.status_code for r in results] == [200] * 5
    assert [r.content.decode() for r in results] == ["processed"] + ["duplicate"] * 4
    assert Payment.objects.filter(customer=attempt.customer).count() == 1
    payment = Payment.objects.get(customer=attempt.customer)
    assert payment.amount == Decimal("25.00") and payment.idempotency_key == "sandbox:txn_test1"
    attempt.refresh_from_db()
    assert attempt.status == "succeeded" and attempt.payment_id == payment.pk
    assert attempt.invoice.__class__.objects.get(pk=attempt.invoice_id).status == Invoice.Status.PAID
    assert WebhookDelivery.objects.count() == 5


@pytest.mark.django_db(transaction=True)
def test_the_same_webhook_five_times_concurrently_credits_once(sandbox_attempt):
    attempt = sandbox_attempt("40.00")
    body = sandbox_event(attempt)
    headers = signed_headers(body)
    results, _errors = run_concurrently(
        lambda: services.webhook_receive(gateway_code="sandbox", body=body, headers=headers, remote_ip="127.0.0.1"), [()] * 5)

    assert sorted(results) == sorted([(200, "processed")] + [(200, "duplicate")] * 4)
    assert Payment.objects.filter(customer=attempt.customer).count() == 1
    assert Invoice.objects.get(pk=attempt.invoice_id).status == Invoice.Status.PAID
    assert balance_of(attempt.customer) == Decimal("0")


@pytest.mark.django_db
def test_forged_signature_is_rejected_and_credits_nothing(client, sandbox_attempt):
    attempt = sandbox_attempt()
    body = sandbox_event(attempt)

    forged = post(client, body, signed_headers(body, secret="not-our-secret"))
    tampered = post(client, sandbox_event(attempt, amount="9999.00"), signed_headers(body))
    unsigned = client.post(URL, data=body, content_type="application/json")

    assert (forged.status_code, tampered.status_code, unsigned.status_code) == (400, 400, 400)
    assert not Payment.objects.exists()
    attempt.refresh_from_db()
    assert attempt.status == "pending"
    assert list(WebhookDelivery.objects.values_list("result", flat=True)) == ["bad_signature"] * 3


@pytest.mark.django_db
def test_old_timestamp_is_rejected(client, sandbox_attempt, settings):
    attempt = sandbox_attempt()
    body = sandbox_event(attempt)
    old = int(time.time()) - settings.PAYMENT_WEBHOOK_TOLERANCE - 5

    response = post(client, body, signed_headers(body, timestamp=old))

    assert response.status_code == 400
    assert not Payment.objects.exists()
    assert WebhookDelivery.objects.get().result == "stale"


@pytest.mark.django_db
def test_unknown_reference_is_acknowledged_and_logged_without_crediting(client, sandbox_attempt):
    attempt = sandbox_attempt()
    attempt.reference = "00000000-0000-0000-0000-000000000000"  # not saved: a reference we never issued
    body = sandbox_event(attempt)

    response = post(client, body, signed_headers(body))

    assert response.status_code == 200
    assert not Payment.objects.exists()
    delivery = WebhookDelivery.objects.get()
    assert delivery.result == "unknown_reference" and delivery.payload == body.decode() and delivery.http_status == 200


@pytest.mark.django_db
@pytest.mark.parametrize("body", [b"not json", b"{}", b'{"id": "e", "type": "payment.succeeded", "data": {"amount": "x"}}'])
def test_malformed_payloads_get_400(client, gateways_on, body):
    response = post(client, body, signed_headers(body))
    assert response.status_code == 400
    assert WebhookDelivery.objects.get().result == "malformed"


@pytest.mark.django_db
def test_get_is_not_allowed_and_unknown_gateway_is_rejected(client, gateways_on):
    assert client.get(URL).status_code == 405
    body = b"{}"
    response = client.post(reverse("gateways:webhook", kwargs={"gateway_code": "nope"}), data=body, content_type="application/json")
    assert response.status_code == 400


@pytest.mark.django_db
@pytest.mark.parametrize("amount, currency", [("5.00", None), ("1000000.00", None), ("30.00", "USD")])
def test_a_mismatched_amount_or_currency_is_held_for_staff_and_credits_nothing(client, sandbox_attempt, amount, currency):
    attempt = sandbox_attempt("30.00")
    body = sandbox_event(attempt, amount=amount, **({"currency": currency} if currency else {}))

    responses = [post(client, body, signed_headers(body)) for _ in range(2)]

    assert [r.status_code for r in responses] == [200, 200]
    assert list(WebhookDelivery.objects.values_list("result", flat=True)) == ["mismatch", "mismatch"]
    assert not Payment.objects.exists()
    assert balance_of(attempt.customer) == Decimal("0")
    assert Invoice.objects.get(pk=attempt.invoice_id).is_open
    attempt.refresh_from_db()
    assert attempt.status == "pending" and attempt.payment_id is None
    assert attempt.failure_message.startswith("Held for staff: expected 30.0")


@pytest.mark.django_db
def test_success_with_a_saved_card_stores_the_method_as_default(client, sandbox_attempt):
    attempt = sandbox_attempt(save_method=True)
    card = {"token": "card_abc", "brand": "visa", "last4": "4242", "exp_month": 12, "exp_year": 2031, "customer": "x"}
    body = sandbox_event(attempt, card=card)

    assert post(client, body, signed_headers(body)).status_code == 200

    method = SavedPaymentMethod.objects.get()
    assert (method.customer_id, method.last4, method.expiry, method.is_default) == (attempt.customer_id, "4242", "12/31", True)


@pytest.mark.django_db
def test_failure_after_success_changes_nothing(client, sandbox_attempt):
    attempt = sandbox_attempt()
    ok = sandbox_event(attempt)
    post(client, ok, signed_headers(ok))
    failed = sandbox_event(attempt, event_type="payment.cancelled", event_id="evt_2")

    assert post(client, failed, signed_headers(failed)).content == b"duplicate"
    assert PaymentAttempt.objects.get(pk=attempt.pk).status == "succeeded"


@pytest.mark.django_db
@pytest.mark.parametrize("amount", ["NaN", "sNaN", "Infinity"])
def test_a_non_finite_amount_is_rejected_as_malformed(client, sandbox_attempt, amount):
    attempt = sandbox_attempt("30.00")
    body = sandbox_event(attempt, amount=amount)
    response = post(client, body, signed_headers(body))
    assert response.status_code == 400
    assert WebhookDelivery.objects.get().result == "malformed" and not Payment.objects.exists()
