"""One lock order everywhere (issue 15, item 11): pairs of operations on the same order and invoice run
in real parallel transactions and neither deadlocks nor fails; docs/ARCHITECTURE.md names the order."""
from datetime import datetime, timezone as dt_timezone
from decimal import Decimal

import pytest
import time_machine
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.db import OperationalError

from accounts.tests.factories import StaffUserFactory, UserFactory
from billing.services.corrections import balance_adjust
from billing.services.invoices import invoice_pay_from_balance
from billing.services.ledger import customer_account, ledger_post, provider_account
from billing.tests.concurrency import run_concurrently
from billing.tests.factories import make_currencies
from orders.models import OrderRenewal, PlanChange
from orders.services import placing, plan_change, renewing

from .factories import PlanFactory, order_options

T0 = datetime(2026, 3, 10, 12, 0, tzinfo=dt_timezone.utc)
ROUNDS = 8


def _credit(customer, amount, key):
    balance_adjust(customer=customer, amount=Decimal(amount), reason="test credit", actor=StaffUserFactory(),
                   idempotency_key=key)


def _active_order(customer, plan):
    _credit(customer, "10.00", f"place:{customer.pk}")
    return placing.order_place(customer=customer, actor=None, plan=plan, period_months=1,
                               options=order_options(plan), idempotency_key=f"o:{customer.pk}").order


def _assert_no_errors(errors):
    assert not [e for e in errors if isinstance(e, OperationalError)], errors  # "deadlock detected" is a 500
    if errors:
        raise errors[0]


@pytest.mark.django_db(transaction=True)
def test_renew_and_pay_on_the_same_renewal_invoice_never_deadlock():
    make_currencies()
    plan = PlanFactory()
    pairs = []
    with time_machine.travel(T0, tick=False):
        for n in range(ROUNDS):
            owner = UserFactory()
            order = _active_order(owner.customer, plan)
            result = renewing.order_renew(order=order, periods=1, actor=owner)  # balance is 0: an unpaid invoice
            assert not result.paid
            pairs.append((owner, order, result.invoice))
        for owner, _order, _invoice in pairs:
            _credit_without_autopay(owner.customer, "10.00")

        def renew(owner, order):
            # As the renew form posts it: the period it offered. Losing the race is a form error, not a 500.
            try:
                return renewing.order_renew(order=order, periods=1, actor=owner, expected_period=2).paid
            except ValidationError as error:
                assert error.code == "renewed"
                return "refused"

        def pay(owner, invoice):
            return invoice_pay_from_balance(invoice=invoice, actor=owner)

        for owner, order, invoice in pairs:
            results, errors = run_concurrently(lambda f, *a: f(*a), [(renew, owner, order), (pay, owner, invoice)])
            _assert_no_errors(errors)
            order.refresh_from_db()
            assert order.current_period == 2  # renewed exactly once
            assert list(OrderRenewal.objects.filter(order=order).values_list("period", "status")) == [(2, "paid")]
    call_command("audit_ledger")


def _credit_without_autopay(customer, amount):
    """Staff credit posted without the after-commit auto-payment of open invoices (so the pair below races)."""
    from django.db import transaction

    with transaction.atomic():
        account = customer_account(customer=customer)
        other = provider_account(kind="adjustment", currency=account.currency)
        ledger_post(idempotency_key=f"credit:{customer.pk}", kind="adjustment",
                    legs=[(account, Decimal(amount)), (other, -Decimal(amount))], memo="test credit")


@pytest.mark.django_db(transaction=True)
def test_plan_change_and_paying_the_upgrade_invoice_never_deadlock():
    make_currencies()
    standard = PlanFactory(prices={(1, "EUR"): "10.00"})
    pro = PlanFactory(product_type=standard.product_type, prices={(1, "EUR"): "20.00"})
    pairs = []
    with time_machine.travel(T0, tick=False):
        for n in range(ROUNDS):
            owner = UserFactory()
            order = _active_order(owner.customer, standard)
            change = plan_change.order_change_plan(order=order, plan=pro, actor=owner)  # unpaid upgrade invoice
            assert not change.paid
            _credit_without_autopay(owner.customer, "30.00")
            pairs.append((owner, order, change.invoice))

        def change_plan(owner, order):
            try:
                return plan_change.order_change_plan(order=order, plan=pro, actor=owner).paid
            except ValidationError as error:  # the payment switched the plan first: a form error, not a 500
                assert error.code == "plan"
                return "refused"

        def pay(owner, invoice):
            return invoice_pay_from_balance(invoice=invoice, actor=owner)

        for owner, order, invoice in pairs:
            results, errors = run_concurrently(lambda f, *a: f(*a), [(change_plan, owner, order), (pay, owner, invoice)])
            _assert_no_errors(errors)
            order.refresh_from_db()
            assert order.plan_id == pro.pk
            assert PlanChange.objects.filter(order=order, status=PlanChange.Status.APPLIED).count() == 1
    call_command("audit_ledger")
