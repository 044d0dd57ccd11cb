"""Back office refunds to where the money came from (issue 15 item 1): the Payment admin action sends a
bank payment back on the ledger and needs the refund permission."""
from datetime import date
from decimal import Decimal

import pytest
from django.core.management import call_command

from accounts.tests.factories import UserFactory
from billing.gateways import services as gateway_services
from billing.models import Invoice, LedgerAccount, Payment, PaymentRefund
from billing.selectors import balance_of
from billing.services.invoices import invoice_topup_create

from .test_backoffice import run_action, staff

PAYMENT_VIEW = ("billing.view_payment",)


@pytest.mark.django_db
def test_bank_payment_refund_from_the_payment_admin(client, currencies):  # noqa: F811
    customer = UserFactory().customer
    invoice = invoice_topup_create(customer=customer, amount=Decimal("80.00"), currency="EUR")
    receipt = gateway_services.bank_transfer_record(invoice=invoice, amount=Decimal("80.00"), bank_reference="IN-77",
                                                    received_on=date(2026, 12, 1), actor=staff())
    payment = Payment.objects.get(pk=receipt.payment_id)

    run_action(client, staff(*PAYMENT_VIEW), "billing_payment", "refund_to_origin", [payment.pk],
               amount="80.00", reason="Closing the account", bank_reference="OUT-77")
    assert not PaymentRefund.objects.exists()  # without portal.refund_payment the action is not there

    allowed = staff(*PAYMENT_VIEW, "portal.refund_payment")
    missing_reference = run_action(client, allowed, "billing_payment", "refund_to_origin", [payment.pk],
                                   amount="80.00", reason="Closing the account", bank_reference="")
    assert "bank&#x27;s transaction reference" in missing_reference.content.decode() and not PaymentRefund.objects.exists()
    run_action(client, allowed, "billing_payment", "refund_to_origin", [payment.pk],
               amount="80.00", reason="Closing the account", bank_reference="OUT-77")

    refund = PaymentRefund.objects.get()
    assert (refund.status, refund.external_id, refund.created_by_id) == ("succeeded", "OUT-77", allowed.pk)
    assert balance_of(customer) == 0 and LedgerAccount.objects.get(code="clearing:bank_transfer:EUR").balance == 0
    assert Invoice.objects.get(pk=invoice.pk).status == Invoice.Status.REFUNDED
    call_command("audit_ledger")
