"""An unverified company payer chosen on the invoice blocks gateway payments as it blocks paying from the
balance: the rule is billing's `invoice_payment_blockers`, used by every payment entry point."""
import pytest
from django.urls import reverse

from billing.gateways import services
from billing.gateways.models import PaymentAttempt
from billing.models import Invoice, Payment
from billing.services.errors import PAYER_UNVERIFIED
from billing.services.invoices import invoice_payer_choose
from billing.services.payers import payer_verify
from billing.tests.factories import CompanyPayerFactory


@pytest.fixture
def invoice_for_pending_payer(gateways_on, customer, make_invoice):
    invoice = make_invoice(customer, "25.00")
    payer = CompanyPayerFactory(customer=customer, company_name="Pending Ltd")
    return invoice_payer_choose(invoice=invoice, payer=payer)


def _nothing_recorded(invoice):
    invoice.refresh_from_db()
    assert invoice.status == Invoice.Status.UNPAID and invoice.amount_paid == 0
    assert not PaymentAttempt.objects.exists() and not Payment.objects.filter(invoice=invoice).exists()


@pytest.mark.django_db
def test_pay_page_refuses_an_unverified_payer_with_its_message(client, owner, customer, invoice_for_pending_payer, fund):
    fund(customer, "100.00")  # the balance would cover it: still nothing may be applied
    client.force_login(owner)
    url = reverse("gateways:pay_invoice", kwargs={"invoice_id": invoice_for_pending_payer.pk})

    page = client.get(url).content.decode()
    assert 'data-testid="payment-blockers"' in page and "Pending Ltd is awaiting verification" in page
    assert 'data-testid="pay-button"' not in page
    assert "until your profile is complete" not in page  # the profile is fine; the payer is the problem

    response = client.post(url, {"gateway": "sandbox", "use_balance": "on"})
    assert response.status_code == 200 and "Pending Ltd is awaiting verification" in response.content.decode()
    _nothing_recorded(invoice_for_pending_payer)


@pytest.mark.django_db
def test_payment_start_refuses_an_unverified_payer(customer, invoice_for_pending_payer, fund):
    fund(customer, "100.00")
    with pytest.raises(services.PaymentNotAllowed) as refused:
        services.payment_start(customer=customer, invoice=invoice_for_pending_payer, gateway_code="sandbox", use_balance=True,
                               return_url_for=lambda attempt: ("http://example.test/ok", "http://example.test/cancel"))
    assert "Pending Ltd is awaiting verification" in str(refused.value)
    assert [b["code"] for b in refused.value.blockers] == [PAYER_UNVERIFIED]
    _nothing_recorded(invoice_for_pending_payer)


@pytest.mark.django_db
def test_pay_without_login_refuses_an_unverified_payer(client, customer, invoice_for_pending_payer):
    customer.pay_without_login = True
    customer.save()
    invoice_for_pending_payer.refresh_from_db()
    url = services.pay_link_url(invoice=invoice_for_pending_payer).removeprefix("http://127.0.0.1:9")

    response = client.get(url)
    page = response.content.decode()
    assert "Pending Ltd is awaiting verification" in page and 'data-testid="pay-button"' not in page
    assert client.post(url, {"gateway": "sandbox"}).status_code == 200
    _nothing_recorded(invoice_for_pending_payer)


@pytest.mark.django_db
def test_verified_payer_can_pay_through_a_gateway(client, owner, invoice_for_pending_payer):
    from accounts.tests.factories import StaffUserFactory

    payer_verify(payer=invoice_for_pending_payer.payer, staff=StaffUserFactory())
    client.force_login(owner)
    response = client.post(reverse("gateways:pay_invoice", kwargs={"invoice_id": invoice_for_pending_payer.pk}), {"gateway": "sandbox"})
    assert response.status_code == 302 and PaymentAttempt.objects.filter(invoice=invoice_for_pending_payer).exists()
