"""Priced add-ons (issue 21, item 1): chosen at order time and changed on a running service, with the
plan change's calendar-day proration; invoices with a line per add-on, credits for removed steps,
renewals (single and set-based) and the forecast charging plan + add-ons, promo codes on add-ons,
extra addresses from the pool, and the refusals. Every amount is computed by hand in a comment."""
from datetime import datetime, timedelta, timezone as dt_timezone
from decimal import Decimal

import pytest
import time_machine
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.db import IntegrityError, transaction

from accounts.tests.factories import UserFactory
from billing.models import CreditNote, Invoice, LedgerAccount
from billing.selectors import balance_of
from billing.services.invoices import invoice_pay_from_balance
from billing.tests.factories import TaxRateFactory
from orders.models import AddonChange, IpAddress, Order, OrderAddon, OrderRenewal, PlanAddonPrice, PromoCode
from orders.services import addons as addon_services
from orders.services import placing, plan_change, renewal_batch, renewing, staff

from .factories import PlanFactory, make_addon, order_options, standard_addons

pytestmark = pytest.mark.django_db

JAN31 = datetime(2026, 1, 31, 12, 0, tzinfo=dt_timezone.utc)  # the period runs to Feb 28: 28 days
FEB14 = datetime(2026, 2, 14, 12, 0, tzinfo=dt_timezone.utc)  # 14 of its 28 days left (Feb 14..27)


def place(customer, plan, addons=None, promo_code="", key="k1", months=1):
    return placing.order_place(customer=customer, actor=None, plan=plan, period_months=months, options=order_options(plan),
                               idempotency_key=f"{customer.pk}:{key}", promo_code=promo_code,
                               addons={addon.pk: quantity for addon, quantity in (addons or {}).items()})


def provider(kind: str) -> Decimal:
    account = LedgerAccount.objects.filter(code=f"{kind}:EUR").first()
    return abs(account.balance) if account else Decimal("0")


def lines(invoice):
    return list(invoice.lines.order_by("position").values_list("description", "quantity", "unit_price", "amount"))


@pytest.fixture
def vat19(settings, customer):
    settings.BILLING_SELLER_COUNTRY = "NL"
    TaxRateFactory(country=customer.country, percent=Decimal("19"))  # DE


# --- order time --------------------------------------------------------------------------------------

def test_order_with_addons_and_a_promo_on_addons_has_a_line_each_taxed_after_the_discount(vat19, customer, fund):
    plan = PlanFactory()
    addons = standard_addons(plan)
    PromoCode.objects.create(code="ADDON20", kind=PromoCode.Kind.PERCENT, value=Decimal("20"), applies_to_plan=False,
                             applies_to_addons=True)
    fund(customer, "23.80")
    with time_machine.travel(JAN31, tick=False):
        placed = place(customer, plan, {addons["ram"]: 2, addons["ipv4"]: 1, addons["backups"]: 1}, promo_code="addon20")
    invoice = placed.invoice
    # By hand: plan 10.00; RAM 2 steps × 3.00 = 6.00; IPv4 1 × 2.50; backups 4.00 -> 22.50.
    # 20 % off each add-on on its own: 1.20 + 0.50 + 0.80 = 2.50 (the plan is not covered).
    # Subtotal 20.00; VAT 19 % = 3.80; total 23.80 (exactly the balance).
    order = placed.order
    assert lines(invoice)[1:] == [
        (f"Extra RAM: 4 GB, order #{order.pk}: 1 month(s)", 1, Decimal("6.00"), Decimal("6.00")),
        (f"Extra IPv4: 1 address, order #{order.pk}: 1 month(s)", 1, Decimal("2.50"), Decimal("2.50")),
        (f"Backups, order #{order.pk}: 1 month(s)", 1, Decimal("4.00"), Decimal("4.00")),
        ("Promo code ADDON20: Extra RAM", 1, Decimal("-1.20"), Decimal("-1.20")),
        ("Promo code ADDON20: Extra IPv4", 1, Decimal("-0.50"), Decimal("-0.50")),
        ("Promo code ADDON20: Backups", 1, Decimal("-0.80"), Decimal("-0.80")),
    ]
    assert (invoice.subtotal, invoice.tax_amount, invoice.total) == (Decimal("20.00"), Decimal("3.80"), Decimal("23.80"))
    assert placed.paid and balance_of(customer) == Decimal("0.00")
    assert (provider("revenue"), provider("tax")) == (Decimal("20.00"), Decimal("3.80"))
    order.refresh_from_db()
    assert order.addons_price == Decimal("12.50") and order.period_total == Decimal("22.50")
    assert {(row.addon.kind, row.quantity, row.unit_price) for row in OrderAddon.objects.filter(order=order)} == {
        ("ram", 2, Decimal("3.00")), ("ipv4", 1, Decimal("2.50")), ("backups", 1, Decimal("4.00"))}
    # The extra address came from the plan's pool with the main one.
    assert IpAddress.objects.filter(order=order, extra=False).get().address == order.ip
    assert IpAddress.objects.filter(order=order, extra=True).count() == 1
    call_command("audit_ledger")


def test_addons_are_priced_in_the_order_period_and_converted_when_not_stored(currencies, customer, fund):
    plan = PlanFactory()
    addons = standard_addons(plan)
    fund(customer, "100.00")
    with time_machine.travel(JAN31, tick=False):
        # 3 months: the stored 3-month RAM price 8.40 a step; 2 steps = 16.80; plan 28.00 -> 44.80.
        quarterly = place(customer, plan, {addons["ram"]: 2}, months=3)
    assert quarterly.invoice.total == Decimal("44.80")
    usd = UserFactory(customer__currency="USD").customer
    quote = placing.order_quote(customer=usd, plan=plan, period_months=1, addons={addons["backups"].pk: 1})
    item = quote.addons[0]
    # No USD price is stored: 4.00 EUR at the test rate, rounded to cents, and shown as converted.
    assert item.price.converted_from == "EUR" and item.unit_price == (Decimal("4.00") * item.price.rate).quantize(Decimal("0.01"))


@pytest.mark.parametrize("quantity, code", [(-1, "addon_quantity"), (5, "addon_too_many"), ("2", "addon_quantity"),
                                            (True, "addon_quantity")])
def test_bad_addon_quantities_at_order_time_change_nothing(currencies, customer, fund, quantity, code):
    plan = PlanFactory()
    ram = standard_addons(plan)["ram"]  # at most 4 steps
    fund(customer, "100.00")
    with pytest.raises(ValidationError) as raised:
        placing.order_place(customer=customer, actor=None, plan=plan, period_months=1, options=order_options(plan),
                            idempotency_key="bad", addons={ram.pk: quantity})
    assert raised.value.code == code
    assert not Order.objects.exists() and not Invoice.objects.exists() and balance_of(customer) == Decimal("100.00")


def test_an_addon_of_another_plan_or_not_sold_any_more_is_refused(currencies, customer, fund):
    plan, other = PlanFactory(), PlanFactory()
    foreign = standard_addons(other)["ram"]
    retired = make_addon(plan, "backups", "Old backups", is_active=False)
    fund(customer, "100.00")
    for addon in (foreign, retired):
        with pytest.raises(ValidationError) as raised:
            place(customer, plan, {addon: 1})
        assert raised.value.code == "addon_unknown"
    assert not Order.objects.exists()


def test_addon_without_a_price_for_the_period_or_with_a_bad_price_is_refused(currencies, customer, fund):
    plan = PlanFactory()
    usd_only = make_addon(plan, "control_panel", "cPanel", prices={(1, "USD"): "15.00"})  # the plan's base is EUR
    with pytest.raises(ValidationError) as raised:
        placing.order_quote(customer=customer, plan=plan, period_months=1, addons={usd_only.pk: 1})
    assert raised.value.code == "addon_no_price"
    with pytest.raises(ValidationError) as raised:
        PlanAddonPrice(addon=usd_only, period_months=1, currency="XYZ", amount=Decimal("1.00")).full_clean()
    assert "currency" in raised.value.message_dict
    for amount in (Decimal("0"), Decimal("-1.00")):
        with pytest.raises(IntegrityError), transaction.atomic():
            PlanAddonPrice.objects.create(addon=usd_only, period_months=3, currency="EUR", amount=amount)
    with pytest.raises(IntegrityError), transaction.atomic():
        PlanAddonPrice.objects.create(addon=usd_only, period_months=2, currency="EUR", amount=Decimal("1.00"))


# --- a running service: adding -------------------------------------------------------------------

def active_order(customer, fund, plan, addons=None, promo_code="", balance="200.00"):
    fund(customer, balance)
    with time_machine.travel(JAN31, tick=False):
        placed = place(customer, plan, addons, promo_code=promo_code)
    assert placed.paid and placed.order.status == Order.Status.ACTIVE
    return placed.order


def test_adding_at_a_february_month_end_is_prorated_by_calendar_days(currencies, customer, fund):
    plan = PlanFactory()
    addons = standard_addons(plan)
    order = active_order(customer, fund, plan)  # Jan 31 -> Feb 28, a 28-day period
    with time_machine.travel(FEB14, tick=False):
        quote = addon_services.addon_change_quote(order=order, addon=addons["ram"], quantity=1)
        # By hand: 3.00 a period × 14 / 28 days = 1.50.
        assert (quote.position.remaining_days, quote.position.period_days, quote.amount) == (14, 28, Decimal("1.50"))
        result = addon_services.order_addon_change(order=order, addon=addons["ram"], quantity=1, actor=None,
                                                   expected_amount=Decimal("1.50"))
    assert result.paid and result.applied
    invoice = result.invoice
    assert invoice.kind == Invoice.Kind.PLAN_CHANGE and invoice.total == Decimal("1.50")
    assert lines(invoice) == [(f"Extra RAM: 2 GB added to order #{order.pk}: 14 of 28 days", 1, Decimal("1.50"), Decimal("1.50"))]
    assert invoice.reference == f"order:{order.pk}:addon-change:{result.change.pk}"
    with time_machine.travel(datetime(2026, 2, 16, 9, 0, tzinfo=dt_timezone.utc), tick=False):
        # By hand: vCPU 5.00 × 12 / 28 (Feb 16..27) = 2.142857… -> 2.14.
        cpu = addon_services.order_addon_change(order=order, addon=addons["cpu"], quantity=1, actor=None)
    assert cpu.invoice.total == Decimal("2.14")
    with time_machine.travel(datetime(2026, 2, 27, 23, 0, tzinfo=dt_timezone.utc), tick=False):
        # The period's last day: 1 of 28 days of two more RAM steps: 6.00 / 28 = 0.214… -> 0.21.
        assert addon_services.addon_change_quote(order=order, addon=addons["ram"], quantity=3).amount == Decimal("0.21")
    order.refresh_from_db()
    # 3.00 (RAM) + 5.00 (vCPU) a period from now on.
    assert order.addons_price == Decimal("8.00")
    assert balance_of(customer) == Decimal("200.00") - Decimal("10.00") - Decimal("1.50") - Decimal("2.14")
    assert list(order.events.filter(action="addon_changed").values_list("details__to", flat=True)) == [1, 1]
    call_command("audit_ledger")


def test_adding_covers_the_periods_already_paid_ahead(currencies, customer, fund):
    plan = PlanFactory()
    ipv4 = standard_addons(plan)["ipv4"]
    order = active_order(customer, fund, plan)
    with time_machine.travel(datetime(2026, 2, 1, 12, 0, tzinfo=dt_timezone.utc), tick=False):
        assert renewing.order_renew(order=order, periods=1, actor=None).paid  # paid up to Mar 31
    order.refresh_from_db()
    with time_machine.travel(FEB14, tick=False):
        quote = addon_services.addon_change_quote(order=order, addon=ipv4, quantity=2)
    # By hand: 2 addresses × 2.50 = 5.00 a period; 5.00 × 14/28 + 5.00 (March, paid ahead) = 7.50.
    assert (quote.position.later_periods, quote.amount) == (1, Decimal("7.50"))


def test_adding_without_funds_leaves_an_invoice_that_applies_the_addon_when_paid(currencies, customer, fund):
    plan = PlanFactory()
    backups = standard_addons(plan)["backups"]
    order = active_order(customer, fund, plan, balance="10.00")
    with time_machine.travel(FEB14, tick=False):
        result = addon_services.order_addon_change(order=order, addon=backups, quantity=1, actor=None)
        assert not result.paid and result.change.status == AddonChange.Status.PENDING
        assert not OrderAddon.objects.filter(order=order).exists()
        fund(customer, "2.00")  # 4.00 × 14/28 = 2.00
        assert invoice_pay_from_balance(invoice=result.invoice)
    result.invoice.refresh_from_db()
    assert result.invoice.status == Invoice.Status.PAID
    assert OrderAddon.objects.get(order=order).addon == backups
    order.refresh_from_db()
    assert order.addons_price == Decimal("4.00")


# --- removing: the unused part is credited -----------------------------------------------------------

def test_removing_credits_the_unused_part_with_a_credit_note_reversing_revenue_and_tax(vat19, customer, fund):
    plan = PlanFactory()
    ipv4 = standard_addons(plan)["ipv4"]
    order = active_order(customer, fund, plan, {ipv4: 2}, balance="17.85")
    # Order invoice by hand: 10.00 + 2 × 2.50 = 15.00; VAT 2.85; total 17.85.
    assert Invoice.objects.get(pk=order.invoice_id).total == Decimal("17.85")
    kept, given_back = IpAddress.objects.filter(order=order, extra=True).order_by("allocated_at", "pk")
    with time_machine.travel(FEB14, tick=False):
        quote = addon_services.addon_change_quote(order=order, addon=ipv4, quantity=1)
        # By hand: one address, 2.50 × 14/28 = 1.25 before tax.
        assert (quote.credit, quote.amount) == (Decimal("1.25"), Decimal("0"))
        result = addon_services.order_addon_change(order=order, addon=ipv4, quantity=1, actor=None,
                                                   expected_amount=Decimal("1.25"))
    # Credited with the tax it bore: 1.25 + 19 % (0.2375 -> 0.24) = 1.49; the credit note's tax is the
    # invoice's pro rata: 2.85 × 1.49 / 17.85 = 0.2379 -> 0.24.
    note = CreditNote.objects.get()
    assert list(result.credit_notes) == [note.number] and note.invoice_id == order.invoice_id
    assert (note.amount, note.tax_amount) == (Decimal("1.49"), Decimal("0.24"))
    assert balance_of(customer) == Decimal("1.49")
    assert (provider("revenue"), provider("tax")) == (Decimal("13.75"), Decimal("2.61"))  # 15.00 − 1.25, 2.85 − 0.24
    order.refresh_from_db()
    assert order.addons_price == Decimal("2.50") and OrderAddon.objects.get(order=order).quantity == 1
    # The newest extra address went back to the pool; the first one stays.
    assert list(IpAddress.objects.filter(order=order, extra=True)) == [kept]
    given_back.refresh_from_db()
    assert given_back.order_id is None and not given_back.extra
    event = order.events.get(action="addon_changed")
    assert (event.details["from"], event.details["to"], event.details["credit"]) == (2, 1, "1.25")
    call_command("audit_ledger")


def test_a_promo_on_addons_discounts_a_later_addition_and_the_credit_returns_only_what_was_paid(currencies, customer, fund):
    plan = PlanFactory()
    addons = standard_addons(plan)
    PromoCode.objects.create(code="HALFADDONS", kind=PromoCode.Kind.PERCENT, value=Decimal("50"), applies_to_plan=False,
                             applies_to_addons=True, periods=None, max_uses_per_customer=None)
    order = active_order(customer, fund, plan, {addons["backups"]: 1}, promo_code="HALFADDONS")
    # Order: 10.00 + backups 4.00 − 50 % of 4.00 = 12.00.
    assert Invoice.objects.get(pk=order.invoice_id).total == Decimal("12.00")
    with time_machine.travel(FEB14, tick=False):
        added = addon_services.order_addon_change(order=order, addon=addons["ram"], quantity=1, actor=None)
        # By hand: RAM 3.00 × 14/28 = 1.50 listed, half of it off: 0.75 to pay.
        assert lines(added.invoice)[-1] == ("Promo code HALFADDONS: Extra RAM", 1, Decimal("-0.75"), Decimal("-0.75"))
        assert added.invoice.total == Decimal("0.75")
        removed = addon_services.order_addon_change(order=order, addon=addons["backups"], quantity=0, actor=None)
    # Backups cost 4.00 − 2.00 = 2.00 this period; 14/28 of that is credited: 1.00 (not 2.00).
    assert removed.change.credit == Decimal("1.00") and CreditNote.objects.get().amount == Decimal("1.00")
    assert not OrderAddon.objects.filter(order=order, addon=addons["backups"]).exists()
    call_command("audit_ledger")


@pytest.mark.parametrize("addon_key, quantity, code", [
    ("ram", 5, "addon_too_many"),
    ("ram", -1, "addon_quantity"),
    ("ipv4", 1, "addon_unchanged"),
    ("disk", 0, "addon_disk_shrink"),
])
def test_bad_changes_are_refused_and_change_nothing(currencies, customer, fund, addon_key, quantity, code):
    plan = PlanFactory()
    addons = standard_addons(plan)
    order = active_order(customer, fund, plan, {addons["ipv4"]: 1, addons["disk"]: 1})
    before = balance_of(customer)
    with time_machine.travel(FEB14, tick=False), pytest.raises(ValidationError) as raised:
        addon_services.order_addon_change(order=order, addon=addons[addon_key], quantity=quantity, actor=None)
    assert raised.value.code == code
    assert not AddonChange.objects.exists() and balance_of(customer) == before
    assert Invoice.objects.count() == 1


def test_changes_of_another_plans_addon_a_stale_amount_or_an_ended_service_are_refused(currencies, customer, fund):
    plan = PlanFactory()
    addons = standard_addons(plan)
    foreign = standard_addons(PlanFactory())["ram"]
    order = active_order(customer, fund, plan)
    with time_machine.travel(FEB14, tick=False):
        with pytest.raises(ValidationError) as raised:
            addon_services.order_addon_change(order=order, addon=foreign, quantity=1, actor=None)
        assert raised.value.code == "addon_unknown"
        with pytest.raises(ValidationError) as raised:  # the page showed yesterday's 1.61
            addon_services.order_addon_change(order=order, addon=addons["ram"], quantity=1, actor=None,
                                              expected_amount=Decimal("1.61"))
        assert raised.value.code == "stale_quote"
        Order.objects.filter(pk=order.pk).update(status=Order.Status.SUSPENDED)
        with pytest.raises(ValidationError) as raised:
            addon_services.order_addon_change(order=order, addon=addons["ram"], quantity=1, actor=None)
        assert raised.value.code == "status"
    assert not AddonChange.objects.exists() and Invoice.objects.count() == 1


def test_extra_addresses_are_refused_when_the_pool_cannot_give_them(currencies, customer, fund):
    plan = PlanFactory(ip_pool__size=2)  # the main address and one more
    ipv4 = standard_addons(plan)["ipv4"]
    order = active_order(customer, fund, plan)
    with time_machine.travel(FEB14, tick=False):
        with pytest.raises(ValidationError) as raised:
            addon_services.order_addon_change(order=order, addon=ipv4, quantity=2, actor=None)
        assert raised.value.code == "addon_no_addresses"
        assert addon_services.order_addon_change(order=order, addon=ipv4, quantity=1, actor=None).applied
    assert IpAddress.objects.filter(order=order).count() == 2


def test_termination_gives_back_every_address(currencies, customer, fund):
    from accounts.tests.factories import StaffUserFactory

    plan = PlanFactory()
    ipv4 = standard_addons(plan)["ipv4"]
    order = active_order(customer, fund, plan, {ipv4: 3})
    assert IpAddress.objects.filter(order=order).count() == 4
    staff.order_terminate(order=order, actor=StaffUserFactory(), reason="test")
    assert not IpAddress.objects.filter(order=order).exists()
    assert not IpAddress.objects.filter(extra=True).exists()


# --- renewals, the renewal job and the forecast ---------------------------------------------------------

def test_renewal_charges_the_plan_plus_a_line_per_addon_and_tax(vat19, customer, fund):
    plan = PlanFactory()
    addons = standard_addons(plan)
    order = active_order(customer, fund, plan, {addons["ram"]: 2, addons["backups"]: 1}, balance="100.00")
    with time_machine.travel(FEB14, tick=False):
        renewed = renewing.order_renew(order=order, periods=2, actor=None)
    # By hand: (10.00 + 6.00 + 4.00) × 2 periods = 40.00; VAT 19 % = 7.60; total 47.60.
    invoice = renewed.invoice
    assert lines(invoice) == [
        (f"{plan.name}, order #{order.pk}: 2 month(s)", 2, Decimal("10.00"), Decimal("20.00")),
        (f"Extra RAM: 4 GB, order #{order.pk}: 2 month(s)", 2, Decimal("6.00"), Decimal("12.00")),
        (f"Backups, order #{order.pk}: 2 month(s)", 2, Decimal("4.00"), Decimal("8.00")),
    ]
    assert (invoice.subtotal, invoice.tax_amount, invoice.total) == (Decimal("40.00"), Decimal("7.60"), Decimal("47.60"))
    assert renewed.renewal.amount == Decimal("40.00") and len(renewed.renewal.addons) == 2


def test_the_renewal_job_charges_plan_plus_addons_set_based_and_with_a_promo_one_by_one(vat19, fund):
    plan = PlanFactory()
    addons = standard_addons(plan)
    PromoCode.objects.create(code="ADDONS", kind=PromoCode.Kind.FIXED, value=Decimal("1.00"), currency="EUR",
                             applies_to_plan=False, applies_to_addons=True, periods=None, max_uses_per_customer=None)
    plain, with_code = UserFactory(customer__country="DE").customer, UserFactory(customer__country="DE").customer
    first = active_order(plain, fund, plan, {addons["ipv4"]: 1, addons["panel"]: 1})
    second = active_order(with_code, fund, plan, {addons["ipv4"]: 1, addons["panel"]: 1}, promo_code="ADDONS")
    with time_machine.travel(first.expires_at - timedelta(hours=1), tick=False):
        summary = renewal_batch.renewals_run()
    assert summary.renewed == 2 and summary.errors == 0
    totals = {r.order_id: Invoice.objects.get(pk=r.invoice_id) for r in OrderRenewal.objects.all()}
    # Set-based: 10.00 + 2.50 + 7.00 = 19.50; VAT 3.705 -> 3.71; 23.21.
    assert (totals[first.pk].subtotal, totals[first.pk].total) == (Decimal("19.50"), Decimal("23.21"))
    assert totals[first.pk].lines.count() == 3
    # The code takes 1.00 off each add-on every period: 19.50 − 2.00 = 17.50; VAT 3.325 -> 3.33; 20.83.
    assert (totals[second.pk].subtotal, totals[second.pk].total) == (Decimal("17.50"), Decimal("20.83"))
    assert totals[second.pk].lines.filter(is_discount=True).count() == 2
    call_command("audit_ledger")


def test_forecast_of_a_service_with_addons_equals_what_the_job_charges(vat19, customer, fund):
    from portal.selectors import renewal_forecast

    plan = PlanFactory()
    addons = standard_addons(plan)
    order = active_order(customer, fund, plan, {addons["ram"]: 1, addons["cpu"]: 1, addons["backups"]: 1})
    with time_machine.travel(FEB14, tick=False):
        forecast = renewal_forecast(customer=customer)
    # By hand: 10.00 + 3.00 + 5.00 + 4.00 = 22.00; VAT 4.18; 26.18.
    assert [(row.order_id, row.amount) for row in forecast.rows] == [(order.pk, Decimal("26.18"))]
    with time_machine.travel(forecast.rows[0].renews_at, tick=False):
        renewal_batch.renewals_run()
    invoice = Invoice.objects.get(pk=OrderRenewal.objects.get(order=order).invoice_id)
    assert invoice.total == forecast.total == Decimal("26.18") and invoice.status == Invoice.Status.PAID


def test_a_pending_renewal_priced_with_old_addons_is_reissued_after_a_change(currencies, customer, fund,
                                                                              django_capture_on_commit_callbacks):
    plan = PlanFactory()
    addons = standard_addons(plan)
    order = active_order(customer, fund, plan, {addons["backups"]: 1}, balance="14.00")
    with time_machine.travel(FEB14, tick=False):
        pending = renewing.order_renew(order=order, periods=1, actor=None)
        assert not pending.paid and pending.invoice.total == Decimal("14.00")  # 10.00 + 4.00; balance 0
        with django_capture_on_commit_callbacks(execute=True):
            addon_services.order_addon_change(order=order, addon=addons["backups"], quantity=0, actor=None)
    pending.invoice.refresh_from_db()
    assert pending.invoice.status == Invoice.Status.CANCELLED
    renewal = OrderRenewal.objects.get(order=order, period=2)
    # Re-issued at the plan alone; the credit (4.00 × 14/28 = 2.00) went to the balance first.
    assert renewal.amount == Decimal("10.00") and renewal.addons == []
    assert balance_of(customer) == Decimal("2.00")


# --- plan changes keep the add-ons ---------------------------------------------------------------------

def test_an_upgrade_keeps_the_addons_on_the_new_plans_equivalents_or_is_refused(currencies, customer, fund):
    plan = PlanFactory()
    addons = standard_addons(plan)
    bigger = PlanFactory(product_type=plan.product_type, prices={(1, "EUR"): "20.00"})
    bare = PlanFactory(product_type=plan.product_type, prices={(1, "EUR"): "30.00"})
    bigger_ram = make_addon(bigger, "ram", "Extra RAM", step=2, max_quantity=4, prices={(1, "EUR"): "3.50"})
    order = active_order(customer, fund, plan, {addons["ram"]: 2})
    with time_machine.travel(FEB14, tick=False):
        with pytest.raises(ValidationError) as raised:
            plan_change.order_change_plan(order=order, plan=bare, actor=None)
        assert raised.value.code == "plan_addons"
        assert plan_change.order_change_plan(order=order, plan=bigger, actor=None).paid
    held = OrderAddon.objects.get(order=order)
    assert (held.addon, held.quantity, held.unit_price) == (bigger_ram, 2, Decimal("3.00"))  # the price held
    with time_machine.travel(FEB14, tick=False):
        removed = addon_services.order_addon_change(order=order, addon=bigger_ram, quantity=0, actor=None)
    # By hand: 2 × 3.00 held × 14/28 = 3.00, credited on the order invoice that charged the old plan's RAM.
    note = CreditNote.objects.get()
    assert (removed.change.credit, note.amount, note.invoice_id) == (Decimal("3.00"), Decimal("3.00"), order.invoice_id)


def test_the_renewal_job_stays_set_based_with_a_constant_number_of_statements_for_services_with_addons(currencies, fund):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from .test_renewals import T0, active_orders

    plan = PlanFactory()
    addons = standard_addons(plan)

    def chunk(customers: int) -> int:
        owners = [UserFactory().customer for _ in range(customers)]
        for customer in owners:
            fund(customer, "100.00")
        orders = active_orders(owners, plan, per_customer=1, now=T0)
        OrderAddon.objects.bulk_create(
            OrderAddon(order=order, addon=addon, quantity=1, unit_price=Decimal("2.50"), currency="EUR")
            for order in orders for addon in (addons["ipv4"], addons["backups"]))
        Order.objects.filter(pk__in=[order.pk for order in orders]).update(addons_price=Decimal("5.00"))
        with CaptureQueriesContext(connection) as queries, time_machine.travel(T0, tick=False):
            summary = renewal_batch.renewals_run(chunk_size=50)
        assert summary.renewed == customers and summary.errors == 0
        # 10.00 + 2 × 2.50 = 15.00 each, a line per add-on.
        invoices = Invoice.objects.filter(kind=Invoice.Kind.RENEWAL, customer__in=owners)
        assert {invoice.total for invoice in invoices} == {Decimal("15.00")}
        assert all(invoice.lines.count() == 3 for invoice in invoices)
        return len(queries)

    chunk(1)  # warm-up: provider accounts and the invoice counter exist from now on
    assert chunk(5) == chunk(20)


@pytest.mark.django_db(transaction=True)
def test_a_double_submitted_addition_makes_one_change_and_one_charge(currencies, customer, fund):
    from billing.tests.concurrency import run_concurrently

    plan = PlanFactory()
    ram = standard_addons(plan)["ram"]
    order = active_order(customer, fund, plan, balance="20.00")

    def add():
        return addon_services.order_addon_change(order=order, addon=ram, quantity=1, actor=None,
                                                 expected_amount=Decimal("1.50"))

    with time_machine.travel(FEB14, tick=False):  # one travel around the parallel calls, never one per thread
        results, errors = run_concurrently(add, [(), ()])
    assert len(results) == 1 and [error.code for error in errors] == ["addon_unchanged"]
    assert AddonChange.objects.count() == 1 and OrderAddon.objects.get(order=order).quantity == 1
    assert balance_of(customer) == Decimal("20.00") - Decimal("10.00") - Decimal("1.50")
    call_command("audit_ledger")


@pytest.mark.django_db(transaction=True)
def test_removing_an_addon_while_the_renewal_job_renews_the_customers_other_service_does_not_deadlock(currencies, customer,
                                                                                                      fund):
    from billing.tests.concurrency import run_concurrently

    plan = PlanFactory()
    ipv4 = standard_addons(plan)["ipv4"]
    first = active_order(customer, fund, plan, {ipv4: 2}, balance="100.00")
    with time_machine.travel(JAN31 + timedelta(days=20), tick=False):
        second = place(customer, plan, key="second").order  # expires Mar 20 (Feb has 28 days)
    renew_at = second.expires_at - timedelta(hours=1)
    # At renew_at (Mar 20, 11:00) the first service's second period has begun: renew it first.
    with time_machine.travel(first.expires_at - timedelta(hours=1), tick=False):
        renewal_batch.renewals_run()
    first.refresh_from_db()

    def remove():
        return addon_services.order_addon_change(order=first, addon=ipv4, quantity=0, actor=None)

    def renew():
        return renewal_batch.renewals_run()

    with time_machine.travel(renew_at, tick=False):
        results, errors = run_concurrently(lambda job: job(), [(remove,), (renew,)])
    assert not errors, [str(error) for error in errors]
    summary = next(result for result in results if isinstance(result, renewal_batch.RenewalRunSummary))
    assert summary.retries == 0  # the job retries a deadlocked chunk: none happened
    assert OrderRenewal.objects.filter(order=second, status=OrderRenewal.Status.PAID).count() == 1
    assert not OrderAddon.objects.filter(order=first).exists() and CreditNote.objects.count() == 1
    call_command("audit_ledger")


def test_a_manually_completed_order_gets_its_extra_addresses_from_the_plans_pool(currencies, customer, fund):
    from accounts.tests.factories import StaffUserFactory
    from orders.models import ProductType

    plan = PlanFactory(product_type=ProductType.objects.create(code="dedicated", name="Dedicated",
                                                               provisioner=ProductType.Provisioner.MANUAL))
    ipv4 = standard_addons(plan)["ipv4"]
    fund(customer, "100.00")
    with time_machine.travel(JAN31, tick=False):
        order = place(customer, plan, {ipv4: 2}).order
        assert order.status == Order.Status.PENDING and not IpAddress.objects.filter(order=order).exists()
        placing.order_complete_manually(order=order, ip="203.0.113.10", actor=StaffUserFactory())
    order.refresh_from_db()
    assert order.status == Order.Status.ACTIVE and order.ip == "203.0.113.10"
    assert IpAddress.objects.filter(order=order, extra=True).count() == 2
