"""Paying an invoice with a card saved earlier (issue 15 #16): charged at once without leaving the
portal, through the same gate and in-flight rule as the hosted payment, and the ledger records it."""
from decimal import Decimal

import pytest
from django.urls import reverse

from accounts.tests.factories import UserFactory
from billing.gateways.models import PaymentAttempt
from billing.models import Invoice, Payment
from billing.selectors import balance_of

pytestmark = pytest.mark.django_db


def pay_page(invoice):
    return reverse("gateways:pay_invoice", kwargs={"invoice_id": invoice.pk})


def test_the_pay_page_offers_the_saved_card_and_charges_it_at_once(client_in, gateways_on, customer, sandbox_card, make_invoice):
    card = sandbox_card()
    invoice = make_invoice(customer, "30.00")
    page = client_in.get(pay_page(invoice)).content.decode()
    assert 'data-testid="pay-saved-form"' in page and f'data-testid="saved-method-{card.pk}"' in page and "•••• 4242" in page

    response = client_in.post(pay_page(invoice), {"saved_method": card.pk})
    assert response.status_code == 302 and response.url == pay_page(invoice)
    invoice.refresh_from_db()
    assert invoice.status == Invoice.Status.PAID
    payment = Payment.objects.get(invoice=invoice)
    assert (payment.amount, payment.gateway) == (Decimal("30.00"), "sandbox")
    attempt = PaymentAttempt.objects.get(invoice=invoice)
    assert attempt.status == PaymentAttempt.Status.SUCCEEDED and attempt.saved_method_id == card.pk
    assert "This invoice is paid" in client_in.get(pay_page(invoice)).content.decode()


def test_the_balance_pays_first_and_the_card_only_the_rest(client_in, gateways_on, customer, sandbox_card, make_invoice, fund):
    card = sandbox_card()
    fund(customer, "10.00")
    invoice = make_invoice(customer, "30.00")
    client_in.post(pay_page(invoice), {"saved_method": card.pk, "use_balance": "on"})
    invoice.refresh_from_db()
    assert invoice.status == Invoice.Status.PAID and balance_of(customer) == Decimal("0.00")
    assert PaymentAttempt.objects.get(invoice=invoice).amount == Decimal("20.00")


def test_a_declined_card_says_so_and_changes_nothing(client_in, gateways_on, customer, sandbox_card, make_invoice):
    card = sandbox_card(behaviour="decline", token="card_declined")
    invoice = make_invoice(customer, "30.00")
    response = client_in.post(pay_page(invoice), {"saved_method": card.pk})
    assert response.status_code == 200 and "declined" in response.content.decode()
    invoice.refresh_from_db()
    assert invoice.is_open and not Payment.objects.filter(invoice=invoice).exists()
    assert PaymentAttempt.objects.get(invoice=invoice).status == PaymentAttempt.Status.FAILED


def test_a_pending_charge_blocks_a_second_payment(client_in, gateways_on, customer, sandbox_card, make_invoice):
    card = sandbox_card(behaviour="pending", token="card_pending")
    invoice = make_invoice(customer, "30.00")
    client_in.post(pay_page(invoice), {"saved_method": card.pk})
    assert PaymentAttempt.objects.get(invoice=invoice).status == PaymentAttempt.Status.PENDING
    page = client_in.get(pay_page(invoice)).content.decode()
    assert 'data-testid="payment-in-flight"' in page and 'data-testid="pay-saved-form"' not in page
    response = client_in.post(pay_page(invoice), {"saved_method": card.pk})
    assert "being processed" in response.content.decode()
    assert PaymentAttempt.objects.filter(invoice=invoice).count() == 1


def test_another_customers_card_is_not_a_choice(client_in, gateways_on, customer, make_invoice):
    from billing.gateways.tests.factories import SavedPaymentMethodFactory

    stranger_card = SavedPaymentMethodFactory(customer=UserFactory().customer, token="card_stranger")
    invoice = make_invoice(customer, "30.00")
    response = client_in.post(pay_page(invoice), {"saved_method": stranger_card.pk})
    assert response.status_code == 200 and "Select a valid choice" in response.content.decode()
    assert not PaymentAttempt.objects.exists()
