"""One payment gate (billing's `invoice_payment_blockers`) for every path that pays: an unverified
company's balance pays nothing — not an order, not a renewal (set-based or one by one) — until staff
verify it; then the same paths pay."""
from decimal import Decimal

import pytest
import time_machine

from accounts.models import Customer
from accounts.tests.factories import UserFactory
from billing.models import Invoice
from billing.selectors import balance_of
from billing.services.invoices import invoice_pay_from_balance, invoice_payer_choose
from billing.services.payers import payer_verify
from billing.services.payments import payment_record
from billing.tests.factories import CompanyPayerFactory
from orders.models import OrderRenewal
from orders.services import placing, renewal_batch

from .factories import PlanFactory, order_options
from .test_renewals import T0, active_orders


def pending_company(customer: Customer) -> Customer:
    customer.profile_type = Customer.ProfileType.COMPANY
    customer.company_name = "Unverified Ltd"
    customer.verification_status = Customer.Verification.PENDING
    customer.save()
    return customer


def verify(customer: Customer) -> None:
    Customer.objects.filter(pk=customer.pk).update(verification_status=Customer.Verification.VERIFIED)


@pytest.mark.django_db
def test_ordering_with_the_balance_does_not_pay_for_an_unverified_company(customer, fund):
    pending_company(customer)
    fund(customer, "500.00")
    plan = PlanFactory()

    placed = placing.order_place(customer=customer, actor=None, plan=plan, period_months=1,
                                 options=order_options(plan), idempotency_key="gate")

    assert placed.paid is False and placed.invoice.status == Invoice.Status.UNPAID
    assert balance_of(customer) == Decimal("500.00")
    verify(customer)
    assert invoice_pay_from_balance(invoice=placed.invoice) is True


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["set_based", "one_by_one"])
def test_renewals_do_not_pay_for_an_unverified_company(path, currencies, monkeypatch):
    if path == "one_by_one":  # as for a chunk the set-based path refuses
        monkeypatch.setattr(renewal_batch.bulk, "supports", lambda charge: False)
    blocked, fine, other = (UserFactory().customer for _ in range(3))
    pending_company(blocked)
    for customer in (blocked, fine, other):
        payment_record(idempotency_key=f"gate:{customer.pk}", customer=customer,
                       amount=Decimal("100.00"), currency="EUR", method="bank_transfer")
    orders = active_orders([blocked, fine, other], PlanFactory(), per_customer=1, now=T0)

    with time_machine.travel(T0, tick=False):
        first = renewal_batch.renewals_run()
    assert first.renewed == 2 and first.unpaid == 1
    assert balance_of(blocked) == Decimal("100.00")
    pending = OrderRenewal.objects.get(order__customer=blocked)
    invoice = Invoice.objects.get(pk=pending.invoice_id)
    assert pending.status == OrderRenewal.Status.PENDING and invoice.status == Invoice.Status.UNPAID

    # An unpaid renewal invoice made out to an unverified company payer is not paid by the next run either.
    verify(blocked)
    payer = CompanyPayerFactory(customer=blocked, company_name="Pending Payer")
    invoice_payer_choose(invoice=invoice, payer=payer)
    with time_machine.travel(T0, tick=False):
        assert renewal_batch.renewals_run().renewed == 0
    assert balance_of(blocked) == Decimal("100.00")

    payer_verify(payer=payer, staff=None)
    with time_machine.travel(T0, tick=False):
        assert renewal_batch.renewals_run().renewed == 1
    assert OrderRenewal.objects.get(order__customer=blocked).status == OrderRenewal.Status.PAID
    assert {o.pk for o in orders} == set(OrderRenewal.objects.filter(status="paid").values_list("order_id", flat=True))
