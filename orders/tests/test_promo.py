"""Promo codes (issue 21, item 2): the discount line, tax on the discounted amount, revenue net of the
discount, recurring codes on renewals, validity rules, and use limits counted exactly under concurrency."""
from datetime import datetime, timedelta, timezone as dt_timezone
from decimal import Decimal

import pytest
import time_machine
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.urls import reverse

from accounts.tests.factories import UserFactory
from billing.models import Invoice, LedgerAccount
from billing.services.errors import BillingError
from billing.services.invoices import LineInput, invoice_issue
from billing.tests.concurrency import run_concurrently
from billing.tests.factories import TaxRateFactory, make_currencies
from orders.models import Order, OrderRenewal, PromoCode, PromoRedemption
from orders.services import lifecycle, placing, renewal_batch, renewing

from .factories import PlanFactory, order_options

T0 = datetime(2026, 3, 10, 12, 0, tzinfo=dt_timezone.utc)


def _code(**fields) -> PromoCode:
    plans = fields.pop("plans", [])
    promo = PromoCode.objects.create(**{"code": "SPRING", "kind": PromoCode.Kind.PERCENT, "value": Decimal("15"), **fields})
    promo.plans.set(plans)
    return promo


def _place(customer, plan, code="SPRING", key=None, months=1):
    return placing.order_place(customer=customer, actor=None, plan=plan, period_months=months, options=order_options(plan),
                               idempotency_key=key or f"promo:{customer.pk}:{code}", promo_code=code)


def _provider_balance(kind: str) -> Decimal:
    account = LedgerAccount.objects.filter(code=f"{kind}:EUR").first()
    return abs(account.balance) if account else Decimal("0")


@pytest.mark.django_db
def test_percentage_code_on_plan_and_setup_fee_is_a_line_taxed_after_the_discount(settings, currencies, customer, fund):
    settings.BILLING_SELLER_COUNTRY = "NL"
    TaxRateFactory(country="DE", percent=Decimal("19"))  # the customer's country
    plan = PlanFactory(setup_fee=Decimal("5.00"))
    _code(code="SPRING", value=Decimal("15"), applies_to_setup_fee=True)
    fund(customer, "15.17")
    with time_machine.travel(T0, tick=False):
        placed = _place(customer, plan, code=" spring ")  # typed in any case, with spaces
    invoice = placed.invoice
    # By hand: base 10.00 + 5.00 = 15.00; 15 % of it = 2.25; subtotal 12.75; VAT 19 % = 2.4225 -> 2.42; total 15.17.
    lines = list(invoice.lines.values_list("description", "unit_price", "amount", "is_discount"))
    assert lines[-1] == ("Promo code SPRING", Decimal("-2.25"), Decimal("-2.25"), True)
    assert (invoice.subtotal, invoice.tax_amount, invoice.total) == (Decimal("12.75"), Decimal("2.42"), Decimal("15.17"))
    assert placed.paid and invoice.status == Invoice.Status.PAID
    # Revenue and tax are recognised net of the discount.
    assert (_provider_balance("revenue"), _provider_balance("tax")) == (Decimal("12.75"), Decimal("2.42"))
    assert PromoRedemption.objects.get(order=placed.order).promo.code == "SPRING"
    assert placed.order.events.get(action="placed").details["discount"] == "2.25"


@pytest.mark.django_db
def test_fixed_code_for_two_periods_discounts_the_first_renewal_and_not_the_next(currencies, customer, fund):
    plan = PlanFactory()  # 10.00 EUR a month, no tax configured
    _code(code="TWOMONTHS", kind=PromoCode.Kind.FIXED, value=Decimal("3.00"), currency="EUR", periods=2)
    fund(customer, "44.00")
    with time_machine.travel(T0, tick=False):
        placed = _place(customer, plan, code="TWOMONTHS")
        assert placed.invoice.total == Decimal("7.00")  # period 1: 10.00 - 3.00
        # Periods 2 and 3 in one renewal: only period 2 is within the code's two periods: 20.00 - 3.00.
        renewed = renewing.order_renew(order=placed.order, periods=2, actor=None)
        assert renewed.paid and renewed.invoice.total == Decimal("17.00")
        # Period 4 is full price.
        renewed = renewing.order_renew(order=placed.order, periods=1, actor=None)
        assert renewed.invoice.total == Decimal("10.00") and not renewed.invoice.lines.filter(is_discount=True).exists()


@pytest.mark.django_db
def test_renewal_job_discounts_a_recurring_code_through_the_one_by_one_path(currencies, fund):
    plan = PlanFactory()
    _code(code="HALF", value=Decimal("50"), periods=None, max_uses_per_customer=None)  # every period
    with_code, without = UserFactory().customer, UserFactory().customer
    for customer in (with_code, without):
        fund(customer, "30.00")
    with time_machine.travel(T0, tick=False):
        first = _place(with_code, plan, code="HALF")
        second = _place(without, plan, code="")
        assert (first.invoice.total, second.invoice.total) == (Decimal("5.00"), Decimal("10.00"))
    with time_machine.travel(first.order.expires_at - timedelta(hours=1), tick=False):
        summary = renewal_batch.renewals_run()
    assert summary.renewed == 2
    totals = {r.order_id: Invoice.objects.get(pk=r.invoice_id).total for r in OrderRenewal.objects.all()}
    assert totals == {first.order.pk: Decimal("5.00"), second.order.pk: Decimal("10.00")}


@pytest.mark.django_db
@pytest.mark.parametrize("fields, error_code", [
    ({"valid_until": T0 - timedelta(seconds=1)}, "promo_expired"),
    ({"valid_from": T0 + timedelta(days=1)}, "promo_expired"),
    ({"is_active": False}, "promo_expired"),
    ({"currency": "USD"}, "promo_currency"),
])
def test_a_code_outside_its_rules_is_refused_and_changes_nothing(currencies, customer, fund, fields, error_code):
    plan = PlanFactory()
    _code(**fields)
    with time_machine.travel(T0, tick=False), pytest.raises(ValidationError) as raised:
        _place(customer, plan)
    assert raised.value.code == error_code
    assert not Order.objects.exists() and not Invoice.objects.exists() and not PromoRedemption.objects.exists()


@pytest.mark.django_db
def test_plan_restriction_new_customers_only_and_per_customer_limit(currencies, customer, fund):
    plan, other_plan = PlanFactory(), PlanFactory()
    _code(code="ONLYONE", plans=[plan], new_customers_only=True, max_uses_per_customer=1)
    fund(customer, "30.00")
    with time_machine.travel(T0, tick=False):
        with pytest.raises(ValidationError) as raised:
            _place(customer, other_plan, code="ONLYONE")
        assert raised.value.code == "promo_plan"
        assert _place(customer, plan, code="ONLYONE").invoice.total == Decimal("8.50")
        with pytest.raises(ValidationError) as raised:
            _place(customer, plan, code="ONLYONE", key="second")
        assert raised.value.code in ("promo_new_only", "promo_used_by_you")
        PromoCode.objects.filter(code="ONLYONE").update(new_customers_only=False)
        with pytest.raises(ValidationError) as raised:
            _place(customer, plan, code="ONLYONE", key="third")
        assert raised.value.code == "promo_used_by_you"


@pytest.mark.django_db
def test_an_order_cancelled_unpaid_gives_its_use_back(settings, currencies, customer):
    plan = PlanFactory()
    _code(code="ONCE", max_uses=1)
    with time_machine.travel(T0, tick=False):
        placed = _place(customer, plan, code="ONCE")  # balance 0: stays unpaid
        assert not placed.paid
        with pytest.raises(ValidationError):
            _place(UserFactory().customer, plan, code="ONCE")
    with time_machine.travel(T0 + timedelta(days=settings.ORDERS_PENDING_CANCEL_DAYS, hours=1), tick=False):
        lifecycle.orders_lifecycle_run()
        placed.order.refresh_from_db()
        assert placed.order.status == Order.Status.CANCELLED
        assert _place(UserFactory().customer, plan, code="ONCE").invoice.total == Decimal("8.50")


@pytest.mark.django_db
def test_fixed_code_never_exceeds_what_it_discounts(currencies, customer, fund):
    plan = PlanFactory(setup_fee=Decimal("5.00"))
    _code(code="BIG", kind=PromoCode.Kind.FIXED, value=Decimal("50.00"), currency="EUR")  # plan price only
    fund(customer, "5.00")
    with time_machine.travel(T0, tick=False):
        placed = _place(customer, plan, code="BIG")
    assert (placed.invoice.subtotal, placed.invoice.total, placed.paid) == (Decimal("5.00"), Decimal("5.00"), True)


@pytest.mark.django_db
def test_invoice_lines_refuse_negative_prices_except_discounts_within_the_other_lines(currencies, customer):
    with pytest.raises(BillingError):
        invoice_issue(customer=customer, kind=Invoice.Kind.ORDER, lines=[LineInput("x", 1, Decimal("-1.00"))])
    with pytest.raises(BillingError):
        invoice_issue(customer=customer, kind=Invoice.Kind.ORDER,
                      lines=[LineInput("x", 1, Decimal("1.00")), LineInput("d", 1, Decimal("-1.01"), discount=True)])
    with pytest.raises(BillingError):
        invoice_issue(customer=customer, kind=Invoice.Kind.ORDER,
                      lines=[LineInput("x", 1, Decimal("1.00")), LineInput("d", 1, Decimal("0.50"), discount=True)])


@pytest.mark.django_db(transaction=True)
def test_twenty_parallel_orders_on_a_ten_use_code_give_exactly_ten():
    make_currencies()
    plan = PlanFactory()
    _code(code="TEN", max_uses=10, max_uses_per_customer=None)
    customers = [UserFactory().customer for _ in range(20)]

    def order(customer):
        with time_machine.travel(T0, tick=False):
            return _place(customer, plan, code="TEN")

    results, errors = run_concurrently(order, [(customer,) for customer in customers])
    assert len(results) == 10 and len(errors) == 10
    assert {getattr(error, "code", repr(error)) for error in errors} == {"promo_used_up"}
    assert PromoRedemption.objects.filter(promo__code="TEN").count() == 10
    assert Invoice.objects.filter(lines__is_discount=True).count() == 10 == Order.objects.count()
    call_command("audit_ledger")


@pytest.mark.django_db
def test_order_page_shows_the_discount_and_refuses_an_unknown_code_on_its_field(client, owner, customer, fund):
    plan = PlanFactory()
    _code(code="SPRING")
    client.force_login(owner)
    data = {"period_months": 1, "request_key": "a" * 32, "hostname": "web1.example.com",
            "os_image": str(plan.product_type.os_images.first().pk), "location": "ams"}
    with time_machine.travel(T0, tick=False):
        response = client.post(reverse("orders:order_new", args=[plan.pk]), {**data, "promo_code": "NOPE"})
        assert response.status_code == 200
        assert response.context["form"].errors["promo_code"] == ["There is no such promo code."]
        response = client.post(reverse("orders:order_new", args=[plan.pk]), {**data, "promo_code": "spring"})
        assert response.context["quote"].discount == Decimal("1.50")
        assert b"Promo code SPRING" in response.content and response.context["total"] == Decimal("8.50")
        response = client.post(reverse("orders:order_confirm", args=[plan.pk]), {**data, "promo_code": "SPRING"})
    assert response.status_code == 302
    assert Invoice.objects.get(customer=customer).total == Decimal("8.50")
