"""Card refunds on the ledger, payments in progress, and money captured while a rate is stale (issue 15,
items 1, 4 and 10). The ledger audit runs after every test (billing/tests/audit_after_test.py)."""
import datetime as dt
from decimal import Decimal

import pytest
import time_machine
from django.core import mail
from django.urls import reverse
from django.utils import timezone

from accounts.tests.factories import StaffUserFactory
from billing.gateways import services
from billing.gateways.models import PaymentAttempt, SandboxCharge
from billing.models import Currency, Invoice, LedgerAccount, Payment, PaymentRefund
from billing.selectors import balance_of
from notifications.models import Notification

from .conftest import sandbox_event, signed_headers

WEBHOOK = reverse("gateways:webhook", kwargs={"gateway_code": "sandbox"})


def _balance(code: str) -> Decimal:
    account = LedgerAccount.objects.filter(code=code).first()
    return account.balance if account else Decimal("0")


def _captured(attempt: PaymentAttempt, transaction_id: str) -> PaymentAttempt:
    """The sandbox captured the attempt's amount and its webhook was applied."""
    SandboxCharge.objects.create(id=transaction_id, merchant_reference=str(attempt.reference), amount=attempt.amount,
                                 currency=attempt.currency, status="succeeded")
    services.attempt_succeed(attempt=attempt, transaction_id=transaction_id, amount=attempt.amount, currency=attempt.currency)
    attempt.refresh_from_db()
    return attempt


def _attempt(customer, invoice, status="pending", transaction_id=""):
    return PaymentAttempt.objects.create(customer=customer, invoice=invoice, gateway="sandbox", amount=invoice.amount_due,
                                         currency=invoice.currency, status=status, transaction_id=transaction_id)


def _post_webhook(client, body: bytes):
    headers = signed_headers(body)
    return client.post(WEBHOOK, data=body, content_type="application/json",
                       **{f"HTTP_{k.upper().replace('-', '_')}": v for k, v in headers.items()})


# --- item 1 -----------------------------------------------------------------------------------------

@pytest.mark.django_db
def test_admin_card_refund_of_a_topup_leaves_through_the_ledger(client, gateways_on, customer, make_invoice):
    invoice = make_invoice(customer, "100.00", kind=Invoice.Kind.ADVANCE)
    attempt = _captured(_attempt(customer, invoice), "txn_refund_topup")
    assert balance_of(customer) == Decimal("100.00")

    client.force_login(StaffUserFactory(is_superuser=True))
    response = client.post(reverse("admin:billing_gateways_paymentattempt_changelist"),
                           {"action": "refund_in_full", "_selected_action": [str(attempt.pk)], "index": "0"}, follow=True)

    text = response.content.decode()
    assert "recorded it in the ledger" in text and "Record the balance side" not in text
    attempt.refresh_from_db()
    assert attempt.status == "refunded" and SandboxCharge.objects.get(pk="txn_refund_topup").refunded_amount == Decimal("100.00")
    # Before: the card got 100 back while the balance kept 100 and clearing never moved (100 EUR created).
    assert balance_of(customer) == 0 and _balance("clearing:sandbox:EUR") == 0
    payment = Payment.objects.get(pk=attempt.payment_id)
    assert payment.refunded_amount == Decimal("100.00")
    refund = PaymentRefund.objects.get(payment=payment)
    assert refund.idempotency_key == f"refund:{payment.pk}:1" and refund.credit_note.invoice_id == invoice.pk


@pytest.mark.django_db
def test_card_refund_of_a_service_invoice_does_not_also_credit_the_balance(gateways_on, customer, make_invoice):
    invoice = make_invoice(customer, "30.00")
    attempt = _captured(_attempt(customer, invoice), "txn_refund_service")

    services.attempt_refund(attempt=attempt, amount=Decimal("30.00"), actor=StaffUserFactory(), reason="Not delivered")

    invoice.refresh_from_db()
    assert invoice.status == Invoice.Status.REFUNDED and balance_of(customer) == 0
    assert _balance("revenue:EUR") == 0 and _balance("clearing:sandbox:EUR") == 0


@pytest.mark.django_db
def test_gateway_refusing_a_refund_returns_the_reserved_money(gateways_on, customer, make_invoice):
    invoice = make_invoice(customer, "25.00", kind=Invoice.Kind.ADVANCE)
    attempt = _captured(_attempt(customer, invoice), "txn_refund_refused")
    SandboxCharge.objects.filter(pk="txn_refund_refused").update(refunded_amount=Decimal("25.00"))  # refunded elsewhere

    with pytest.raises(services.GatewayError):
        services.attempt_refund(attempt=attempt, amount=Decimal("25.00"), actor=StaffUserFactory())

    assert PaymentRefund.objects.get().status == PaymentRefund.Status.FAILED
    assert balance_of(customer) == Decimal("25.00") and _balance("refunding:EUR") == 0
    attempt.refresh_from_db()
    assert attempt.status == "succeeded" and attempt.refunded_amount == 0


@pytest.mark.django_db
def test_refund_to_origin_routes_bank_payments_to_a_recorded_bank_refund(gateways_on, customer, make_invoice):
    invoice = make_invoice(customer, "15.00", kind=Invoice.Kind.ADVANCE)
    receipt = services.bank_transfer_record(invoice=invoice, amount=Decimal("15.00"), bank_reference="IN-1",
                                            received_on=dt.date(2026, 12, 1), actor=StaffUserFactory())

    refund = services.payment_refund_to_origin(payment=Payment.objects.get(pk=receipt.payment_id), amount=Decimal("15.00"),
                                               reason="Closed", actor=StaffUserFactory(), bank_reference="OUT-9")

    assert refund.status == PaymentRefund.Status.SUCCEEDED and refund.external_id == "OUT-9"
    assert balance_of(customer) == 0 and _balance("clearing:bank_transfer:EUR") == 0


@pytest.mark.django_db
@pytest.mark.ledger_corrupted_on_purpose
def test_audit_reports_a_card_refund_the_ledger_never_saw(gateways_on, customer, make_invoice):
    from billing.gateways.audit import attempt_mismatches

    attempt = _captured(_attempt(customer, make_invoice(customer, "20.00", kind=Invoice.Kind.ADVANCE)), "txn_silent")
    PaymentAttempt.objects.filter(pk=attempt.pk).update(refunded_amount=Decimal("20.00"), status="refunded")  # the old admin action

    assert attempt_mismatches() == [f"gateway payment {attempt.reference}: 20.000 refunded at the gateway but 0.0000 in the ledger"]


# --- item 4 -----------------------------------------------------------------------------------------

@pytest.mark.django_db
def test_a_pending_card_payment_cannot_be_paid_again(client, owner, gateways_on, customer, make_invoice):
    invoice = make_invoice(customer, "30.00", kind=Invoice.Kind.ADVANCE)
    _attempt(customer, invoice, transaction_id="txn_pending")  # the card is awaiting confirmation
    client.force_login(owner)

    pay_page = client.get(reverse("gateways:pay_invoice", kwargs={"invoice_id": invoice.pk}))
    invoice_page = client.get(reverse("billing:invoice_detail", args=[invoice.pk]))
    second = client.post(reverse("gateways:pay_invoice", kwargs={"invoice_id": invoice.pk}), {"gateway": "sandbox"})
    payments_page = client.get(reverse("billing:payments"))

    assert b'data-testid="payment-in-flight"' in pay_page.content and b'data-testid="pay-by-method"' not in invoice_page.content
    assert b'data-testid="payment-in-flight"' in invoice_page.content
    assert second.status_code == 200 and "being processed" in second.content.decode()
    assert PaymentAttempt.objects.filter(invoice=invoice).count() == 1
    assert b'data-testid="payments-in-progress"' in payments_page.content and "€30.00" in payments_page.content.decode()


@pytest.mark.django_db
def test_a_second_success_for_a_paid_invoice_goes_to_the_balance_and_says_so(client, gateways_on, customer, make_invoice,
                                                                            django_capture_on_commit_callbacks):
    invoice = make_invoice(customer, "30.00")
    first, second = _attempt(customer, invoice), _attempt(customer, invoice)
    assert _post_webhook(client, sandbox_event(first, transaction="txn_one", event_id="evt_one")).content == b"processed"

    with django_capture_on_commit_callbacks(execute=True):
        response = _post_webhook(client, sandbox_event(second, transaction="txn_two", event_id="evt_two"))

    assert response.status_code == 200
    second.refresh_from_db()
    assert second.status == "succeeded" and "credited to the balance" in second.failure_message
    assert Invoice.objects.get(pk=invoice.pk).status == Invoice.Status.PAID and balance_of(customer) == Decimal("30.00")
    notice = Notification.objects.filter(customer=customer, kind="payment_received").order_by("-pk").first()
    assert notice.context["credited_to_balance"] is True
    assert any(f"Invoice {invoice.number} had already been paid" in m.body for m in mail.outbox)


# --- item 10 ----------------------------------------------------------------------------------------

@pytest.mark.django_db
def test_card_payment_into_another_currency_while_the_rate_is_stale_is_credited(client, gateways_on, customer, make_invoice):
    with time_machine.travel(dt.datetime(2026, 12, 4, 10, 0, tzinfo=dt.timezone.utc), tick=False):
        Currency.objects.filter(code="USD").update(rate_feed_date=dt.date(2025, 10, 21), rate_updated_at=timezone.now())
        invoice = make_invoice(customer, "50.00", kind=Invoice.Kind.ADVANCE, currency="USD")
        attempt = _attempt(customer, invoice)

        response = _post_webhook(client, sandbox_event(attempt, transaction="txn_stale", event_id="evt_stale"))

    assert response.status_code == 200 and response.content == b"processed"  # before: 500 until the rate refreshed
    payment = Payment.objects.get(customer=customer)
    assert payment.rate_stale and payment.credited_currency == "EUR" and balance_of(customer) == Decimal("43.08")


@pytest.mark.django_db
def test_a_refund_left_pending_is_resumed_with_its_own_key_once(gateways_on, customer, make_invoice, monkeypatch):
    from billing.gateways.providers.sandbox import SandboxGateway

    invoice = make_invoice(customer, "60.00", kind=Invoice.Kind.ADVANCE)
    attempt = _captured(_attempt(customer, invoice), "txn_resume")
    from billing.services.refunds import payment_refund_reserve

    # The process stopped after the reservation was committed, before the gateway answered.
    refund = payment_refund_reserve(payment=Payment.objects.get(pk=attempt.payment_id), amount=Decimal("60.00"),
                                    reason="Crash test", actor=None)
    keys = []
    original = SandboxGateway.refund
    monkeypatch.setattr(SandboxGateway, "refund", lambda self, **kw: keys.append(kw["idempotency_key"]) or original(self, **kw))

    services.attempt_refund_resume(refund=refund, actor=StaffUserFactory())
    with pytest.raises(services.GatewayError):
        services.attempt_refund_resume(refund=PaymentRefund.objects.get(pk=refund.pk), actor=None)

    assert keys == [refund.idempotency_key]
    attempt.refresh_from_db()
    assert attempt.refunded_amount == Decimal("60.00") and PaymentRefund.objects.get().status == "succeeded"
    assert balance_of(customer) == 0 and _balance("refunding:EUR") == 0
