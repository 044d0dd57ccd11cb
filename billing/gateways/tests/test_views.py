from datetime import date
from decimal import Decimal

import pytest
from django.db import IntegrityError, transaction
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from accounts.tests.factories import StaffUserFactory, UserFactory
from billing.gateways import sandbox_provider, services
from billing.gateways.models import (
    AutopaySettings, BankTransferReceipt, GatewayConfig, PaymentAttempt, SandboxWebhookOutbox, SavedPaymentMethod,
)
from billing.gateways.selectors import gateways_available
from billing.models import Invoice, Payment
from billing.selectors import balance_of

from .factories import GatewayConfigFactory, SavedPaymentMethodFactory


@pytest.fixture
def owner_client(client, owner):
    client.force_login(owner)
    return client


@pytest.mark.django_db
def test_gateways_follow_staff_settings_per_currency_and_country(currencies, customer):
    GatewayConfigFactory(code="sandbox", currencies=["EUR", "USD"], countries=["DE", "FR"])
    assert [g.code for g in gateways_available(customer=customer, currency="EUR")] == ["sandbox"]
    assert gateways_available(customer=customer, currency="JPY") == []
    customer.country = "US"
    assert gateways_available(customer=customer, currency="EUR") == []
    GatewayConfig.objects.filter(code="sandbox").update(countries=[], excluded_countries=["US"])
    assert gateways_available(customer=customer, currency="EUR") == []
    customer.country = "GB"
    assert [g.code for g in gateways_available(customer=customer, currency="USD")] == ["sandbox"]
    GatewayConfig.objects.filter(code="sandbox").update(enabled=False)
    assert gateways_available(customer=customer, currency="USD") == []


@pytest.mark.django_db
def test_bank_transfer_is_offered_only_with_bank_details(settings, gateways_on, customer):
    settings.BILLING_BANK_ACCOUNT = {"beneficiary": "", "iban": ""}
    assert "bank_transfer" not in [g.code for g in gateways_available(customer=customer, currency="EUR")]
    settings.BILLING_BANK_ACCOUNT = {"beneficiary": "Host GmbH", "iban": "DE89370400440532013000", "bic": "COBADEFFXXX"}
    assert "bank_transfer" in [g.code for g in gateways_available(customer=customer, currency="EUR")]


@pytest.mark.django_db
def test_pay_page_shows_methods_and_bank_details_with_the_invoice_number(settings, owner_client, gateways_on, customer, make_invoice):
    settings.BILLING_BANK_ACCOUNT = {"beneficiary": "Host GmbH", "iban": "DE89370400440532013000", "bic": "COBADEFFXXX",
                                      "bank_name": "Commerzbank", "address": ""}
    invoice = make_invoice(customer, "19.99")

    page = owner_client.get(reverse("gateways:pay_invoice", kwargs={"invoice_id": invoice.pk}))

    html = page.content.decode()
    assert page.status_code == 200
    assert 'data-testid="gateway-sandbox"' in html
    assert "DE89370400440532013000" in html and f'data-testid="bank-reference">{invoice.number}<' in html


@pytest.mark.django_db
def test_another_customers_invoice_method_and_attempt_are_404(owner_client, gateways_on, make_invoice):
    stranger = UserFactory().customer
    invoice = make_invoice(stranger, "5.00")
    method = SavedPaymentMethodFactory(customer=stranger)
    attempt = PaymentAttempt.objects.create(customer=stranger, gateway="sandbox", amount=1, currency="EUR")

    assert owner_client.get(reverse("gateways:pay_invoice", kwargs={"invoice_id": invoice.pk})).status_code == 404
    assert owner_client.post(reverse("gateways:pay_invoice", kwargs={"invoice_id": invoice.pk}), {"gateway": "sandbox"}).status_code == 404
    assert owner_client.post(reverse("gateways:method_default", kwargs={"method_id": method.pk})).status_code == 404
    assert owner_client.post(reverse("gateways:method_remove", kwargs={"method_id": method.pk})).status_code == 404
    assert owner_client.get(reverse("gateways:attempt", kwargs={"reference": attempt.reference})).status_code == 404
    assert SavedPaymentMethod.objects.filter(pk=method.pk).exists()


@pytest.mark.django_db
def test_technical_role_cannot_reach_payments(client, gateways_on, customer):
    technical = UserFactory(customer=customer, role="technical")
    client.force_login(technical)
    assert client.get(reverse("gateways:methods")).status_code == 403


@pytest.mark.django_db
def test_payment_is_refused_with_links_until_the_profile_is_complete(owner_client, owner, gateways_on, customer, make_invoice):
    invoice = make_invoice(customer, "5.00")
    customer.city = ""
    customer.save()

    page = owner_client.post(reverse("gateways:pay_invoice", kwargs={"invoice_id": invoice.pk}), {"gateway": "sandbox"})

    assert page.status_code == 200
    assert b'data-testid="payment-blockers"' in page.content and reverse("accounts:settings").encode() in page.content
    assert not PaymentAttempt.objects.exists()


@pytest.mark.django_db
def test_pay_uses_the_balance_first_and_sends_only_the_rest_to_the_gateway(owner_client, gateways_on, customer, make_invoice, fund):
    fund(customer, "4.00")
    invoice = make_invoice(customer, "10.00")

    response = owner_client.post(reverse("gateways:pay_invoice", kwargs={"invoice_id": invoice.pk}),
                                 {"gateway": "sandbox", "use_balance": "on"})

    assert response.status_code == 302 and "/pay/sandbox-provider/checkout/" in response["Location"]
    attempt = PaymentAttempt.objects.get()
    assert attempt.amount == Decimal("6.00")
    assert balance_of(customer) == Decimal("0")
    invoice.refresh_from_db()
    assert invoice.amount_paid == Decimal("4.00") and invoice.status == Invoice.Status.IN_PROGRESS


@pytest.mark.django_db
def test_balance_that_covers_the_invoice_pays_it_without_a_gateway(owner_client, gateways_on, customer, make_invoice, fund):
    fund(customer, "20.00")
    invoice = make_invoice(customer, "10.00")

    response = owner_client.post(reverse("gateways:pay_invoice", kwargs={"invoice_id": invoice.pk}),
                                 {"gateway": "sandbox", "use_balance": "on"})

    assert response.status_code == 302
    assert Invoice.objects.get(pk=invoice.pk).status == Invoice.Status.PAID
    assert not PaymentAttempt.objects.exists()


@pytest.mark.django_db
def test_disabled_or_unknown_gateway_is_a_form_error(owner_client, gateways_on, customer, make_invoice):
    invoice = make_invoice(customer, "10.00")
    for code in ("stripe", "nope", ""):
        page = owner_client.post(reverse("gateways:pay_invoice", kwargs={"invoice_id": invoice.pk}), {"gateway": code})
        assert page.status_code == 200
    assert not PaymentAttempt.objects.exists()


@pytest.mark.django_db
def test_sandbox_hosted_page_queues_a_signed_webhook(client, gateways_on, customer, make_invoice, django_capture_on_commit_callbacks):
    invoice = make_invoice(customer, "10.00")
    started = services.payment_start(customer=customer, invoice=invoice, gateway_code="sandbox",
                                     return_url_for=lambda a: ("http://testserver/ok", "http://testserver/no"))
    bad = client.post(started.result.redirect_url, {"number": "1234 5678 9012 3456", "expiry": "12/30", "cvc": "123"})
    assert b"Use one of the sandbox test card numbers." in bad.content

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = client.post(started.result.redirect_url, {"number": "4242 4242 4242 4242", "expiry": "12/30", "cvc": "123"})

    assert response.status_code == 302 and response["Location"] == "http://testserver/ok"
    event = SandboxWebhookOutbox.objects.get()
    assert event.event_type == "payment.succeeded" and event.payload["data"]["reference"] == str(started.attempt.reference)
    assert len(callbacks) == 1  # delivered over HTTP after commit; failures stay in the outbox


@pytest.mark.django_db
def test_undelivered_sandbox_webhooks_back_off_and_stay_in_the_outbox(gateways_on, customer, make_invoice):
    invoice = make_invoice(customer, "10.00")
    started = services.payment_start(customer=customer, invoice=invoice, gateway_code="sandbox",
                                     return_url_for=lambda a: ("http://t/ok", "http://t/no"))
    sandbox_provider.checkout_pay(checkout_id=started.attempt.external_id, number="4242424242424242", exp_month=12,
                                  exp_year=2030, cvc="123", save_card=False)
    row = SandboxWebhookOutbox.objects.get()

    assert sandbox_provider.webhook_deliver(outbox_id=row.pk) is False  # PORTAL_BASE_URL is a closed port here

    row.refresh_from_db()
    assert row.delivered_at is None and row.attempts == 1 and row.last_error and row.deliver_after > row.created_at
    assert not Payment.objects.exists()


@pytest.mark.django_db
def test_payment_methods_page_default_and_remove(owner_client, gateways_on, customer, django_assert_max_num_queries):
    first = SavedPaymentMethodFactory(customer=customer, is_default=True, last4="1111")
    second = SavedPaymentMethodFactory(customer=customer, last4="2222")

    page = owner_client.get(reverse("gateways:methods"))
    assert page.status_code == 200 and b"1111" in page.content and b"2222" in page.content

    owner_client.post(reverse("gateways:method_default", kwargs={"method_id": second.pk}))
    assert list(SavedPaymentMethod.objects.filter(is_default=True)) == [second]
    owner_client.post(reverse("gateways:method_remove", kwargs={"method_id": second.pk}))
    assert list(SavedPaymentMethod.objects.filter(customer=customer)) == [first]
    assert SavedPaymentMethod.objects.get(pk=first.pk).is_default
    assert owner_client.get(reverse("gateways:method_remove", kwargs={"method_id": first.pk})).status_code == 405


@pytest.mark.django_db
def test_payment_methods_page_query_count_does_not_grow(owner_client, gateways_on, customer):
    def count() -> int:
        with CaptureQueriesContext(connection) as ctx:
            assert owner_client.get(reverse("gateways:methods")).status_code == 200
        return len(ctx.captured_queries)

    SavedPaymentMethodFactory(customer=customer, is_default=True)
    small = count()
    SavedPaymentMethodFactory.create_batch(30, customer=customer)
    assert count() == small


@pytest.mark.django_db
def test_only_one_default_method_per_customer(customer):
    SavedPaymentMethodFactory(customer=customer, is_default=True)
    with pytest.raises(IntegrityError), transaction.atomic():
        SavedPaymentMethodFactory(customer=customer, is_default=True)


@pytest.mark.django_db
@pytest.mark.parametrize("data, field", [
    ({"enabled": "on", "monthly_limit": "50"}, "method"),
    ({"enabled": "on", "monthly_limit": "-1"}, "monthly_limit"),
    ({"enabled": "on", "monthly_limit": "10.001"}, "monthly_limit"),
    ({"enabled": "on", "monthly_limit": "abc"}, "monthly_limit"),
    ({"enabled": "on", "monthly_limit": "99999999999"}, "monthly_limit"),
    ({"enabled": "on", "monthly_limit": "0"}, "monthly_limit"),
])
def test_autopay_form_rejects_bad_input(owner_client, gateways_on, customer, data, field):
    SavedPaymentMethodFactory(customer=customer, is_default=True)
    page = owner_client.post(reverse("gateways:autopay"), data)
    assert page.status_code == 200 and page.context["form"].errors.get(field)
    assert not AutopaySettings.objects.exists()


@pytest.mark.django_db
def test_autopay_form_saves_and_refuses_another_customers_card(owner_client, gateways_on, customer):
    mine = SavedPaymentMethodFactory(customer=customer, is_default=True)
    theirs = SavedPaymentMethodFactory(customer=UserFactory().customer)

    bad = owner_client.post(reverse("gateways:autopay"), {"enabled": "on", "method": theirs.pk, "monthly_limit": "50"})
    assert bad.status_code == 200 and bad.context["form"].errors.get("method")
    ok = owner_client.post(reverse("gateways:autopay"), {"enabled": "on", "method": mine.pk, "monthly_limit": "50.00"})
    assert ok.status_code == 302
    row = AutopaySettings.objects.get(customer=customer)
    assert row.enabled and row.method == mine and row.monthly_limit == Decimal("50.00")


@pytest.mark.django_db
def test_staff_record_a_bank_transfer_once(gateways_on, customer, make_invoice):
    staff = StaffUserFactory()
    invoice = make_invoice(customer, "30.00")

    first = services.bank_transfer_record(invoice=invoice, amount=Decimal("30.00"), bank_reference="STMT-77",
                                          received_on=date(2026, 11, 20), actor=staff)
    again = services.bank_transfer_record(invoice=invoice, amount=Decimal("30.00"), bank_reference="STMT-77",
                                          received_on=date(2026, 11, 20), actor=staff)

    assert first.pk == again.pk and Payment.objects.count() == 1
    assert Invoice.objects.get(pk=invoice.pk).status == Invoice.Status.PAID
    from billing.services.errors import BillingError

    with pytest.raises(BillingError):
        services.bank_transfer_record(invoice=invoice, amount=Decimal("31.00"), bank_reference="STMT-77",
                                      received_on=date(2026, 11, 20), actor=staff)
    with pytest.raises(BillingError):
        services.bank_transfer_record(invoice=invoice, amount=Decimal("1.001"), bank_reference="STMT-78",
                                      received_on=date(2026, 11, 20), actor=staff)


@pytest.mark.django_db
def test_bank_transfer_through_admin(client, gateways_on, customer, make_invoice):
    staff = StaffUserFactory()
    client.force_login(staff)
    invoice = make_invoice(customer, "30.00")

    response = client.post(reverse("admin:billing_gateways_banktransferreceipt_add"), {
        "invoice_number": invoice.number, "amount": "30.00", "bank_reference": "STMT-1", "received_on": "2026-11-20"})

    assert response.status_code == 302
    receipt = BankTransferReceipt.objects.get()
    assert receipt.recorded_by == staff and Payment.objects.get().pk == receipt.payment_id
    assert Invoice.objects.get(pk=invoice.pk).status == Invoice.Status.PAID
    assert client.get(reverse("admin:billing_gateways_webhookdelivery_changelist")).status_code == 200
    assert client.get(reverse("admin:billing_gateways_paymentattempt_changelist")).status_code == 200


@pytest.mark.django_db
def test_billing_invoice_page_shows_the_gateway_panel(owner_client, gateways_on, customer, make_invoice):
    invoice = make_invoice(customer, "10.00")
    page = owner_client.get(reverse("billing:invoice_detail", kwargs={"invoice_id": invoice.pk}))
    assert b'data-testid="gateway-panel"' in page.content
    assert reverse("gateways:pay_invoice", kwargs={"invoice_id": invoice.pk}).encode() in page.content


@pytest.mark.django_db
def test_pages_are_translated_to_russian(owner_client, gateways_on, customer, make_invoice):
    customer.language = "ru"
    customer.save()
    invoice = make_invoice(customer, "10.00")
    assert "Способы оплаты" in owner_client.get(reverse("gateways:methods")).content.decode()
    assert "Выберите способ оплаты" in owner_client.get(reverse("gateways:pay_invoice", kwargs={"invoice_id": invoice.pk})).content.decode()
