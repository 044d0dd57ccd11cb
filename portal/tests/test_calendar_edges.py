"""The money and lifecycle paths at calendar edges, with the clock frozen at each moment.

Every expected date and amount is worked out by hand in the comments: month ends (Jan 31 -> Feb
28/29, Mar 31 -> Apr 30), Feb 29 of a leap year, the EU and US DST nights for customers in
Europe/Amsterdam and America/New_York, and the year change (Dec 31 23:59:59 -> Jan 1).
"""
import zoneinfo
from datetime import date, datetime, timedelta, timezone as dt_timezone
from decimal import Decimal

import pytest
import time_machine
from django.utils import timezone

from accounts.tests.factories import StaffUserFactory, UserFactory
from billing.models import Invoice
from billing.services.acts import acts_generate, month_bounds, previous_month
from billing.services.invoices import LineInput, invoice_issue
from billing.services.payments import payment_record
from notifications.models import Notification
from orders.models import Order
from orders.selectors import renewal_forecast
from orders.services import lifecycle, placing, plan_change, renewal_batch, renewing
from orders.services.staff import order_extend
from orders.tests.factories import PlanFactory, order_options
from tickets.models import Ticket
from tickets.services import tickets_autoclose_sweep
from tickets.tests.factories import TicketFactory

UTC = dt_timezone.utc
AMSTERDAM = zoneinfo.ZoneInfo("Europe/Amsterdam")
NEW_YORK = zoneinfo.ZoneInfo("America/New_York")

pytestmark = pytest.mark.django_db


def at(moment: datetime):
    return time_machine.travel(moment, tick=False)


def utc(*parts) -> datetime:
    return datetime(*parts, tzinfo=UTC)


def local(zone, *parts) -> datetime:
    return datetime(*parts, tzinfo=zone)


@pytest.fixture
def plan(currencies):
    return PlanFactory()  # 10.00 EUR a month, 100.00 a year


def customer_in(zone_name: str = "UTC", funds: str = "1000.00"):
    customer = UserFactory(customer__timezone=zone_name).customer
    if funds:
        payment_record(idempotency_key=f"calendar:{customer.pk}", customer=customer, amount=Decimal(funds),
                       currency=customer.currency, method="bank_transfer")
    return customer


def place(customer, plan, moment: datetime, months: int = 1) -> Order:
    with at(moment):
        placed = placing.order_place(customer=customer, actor=None, plan=plan, period_months=months,
                                     options=order_options(plan), idempotency_key=f"calendar:{moment.isoformat()}:{customer.pk}")
    order = Order.objects.get(pk=placed.order.pk)
    assert order.status == Order.Status.ACTIVE
    return order


def renew(order: Order, moment: datetime, periods: int = 1) -> Order:
    with at(moment):
        assert renewing.order_renew(order=order, periods=periods, actor=None).paid
    order.refresh_from_db()
    return order


# --- ordering and renewing ------------------------------------------------------------------------

@pytest.mark.parametrize(("ordered", "expiries"), [
    # Jan 31 -> Feb 28 (2027 is not a leap year) -> Mar 31 -> Apr 30: the anchor day comes back.
    (utc(2027, 1, 31, 10), [utc(2027, 2, 28, 10), utc(2027, 3, 31, 10), utc(2027, 4, 30, 10)]),
    # Leap year: Jan 31 -> Feb 29.
    (utc(2028, 1, 31, 10), [utc(2028, 2, 29, 10), utc(2028, 3, 31, 10), utc(2028, 4, 30, 10)]),
    # Ordered on Feb 29: the 29th every month after.
    (utc(2028, 2, 29, 10), [utc(2028, 3, 29, 10), utc(2028, 4, 29, 10), utc(2028, 5, 29, 10)]),
    # Mar 31 -> Apr 30 -> May 31.
    (utc(2027, 3, 31, 10), [utc(2027, 4, 30, 10), utc(2027, 5, 31, 10), utc(2027, 6, 30, 10)]),
    # The last second of the year.
    (utc(2026, 12, 31, 23, 59, 59), [utc(2027, 1, 31, 23, 59, 59), utc(2027, 2, 28, 23, 59, 59), utc(2027, 3, 31, 23, 59, 59)]),
])
def test_order_then_renewals_end_on_the_anchor_day_clamped_to_short_months(plan, ordered, expiries):
    order = place(customer_in(), plan, ordered)
    seen = [order.expires_at]
    for _ in expiries[1:]:
        seen.append(renew(order, order.expires_at - timedelta(hours=1)).expires_at)
    assert seen == expiries
    assert order.current_period == len(expiries)


def test_yearly_order_on_feb_29_renews_on_feb_28_then_back_on_feb_29(currencies):
    plan = PlanFactory()
    order = place(customer_in(), plan, utc(2028, 2, 29, 10), months=12)
    assert order.expires_at == utc(2029, 2, 28, 10)
    # Counted from the anchor, not from the clamped date: 2032 is a leap year again.
    order = renew(order, utc(2029, 2, 27), periods=3)
    assert order.expires_at == utc(2032, 2, 29, 10)


@pytest.mark.parametrize(("zone", "ordered", "expiries"), [
    # EU spring forward (2027-03-28 02:00 CET -> 03:00 CEST): 23:30 local stays 23:30 local on the 28th.
    (AMSTERDAM, (2027, 2, 28, 23, 30), [(2027, 3, 28, 23, 30), (2027, 4, 28, 23, 30)]),
    # EU fall back (2027-10-31 03:00 CEST -> 02:00 CET).
    (AMSTERDAM, (2027, 9, 30, 23, 30), [(2027, 10, 30, 23, 30), (2027, 11, 30, 23, 30)]),
    # US spring forward (2027-03-14 02:00 EST -> 03:00 EDT).
    (NEW_YORK, (2027, 2, 14, 23, 30), [(2027, 3, 14, 23, 30), (2027, 4, 14, 23, 30)]),
    # US fall back (2027-11-07 02:00 EDT -> 01:00 EST), ordered in the last minutes of Oct 7.
    (NEW_YORK, (2027, 10, 7, 23, 45), [(2027, 11, 7, 23, 45), (2027, 12, 7, 23, 45)]),
])
def test_periods_keep_the_customers_wall_clock_across_dst_nights(plan, zone, ordered, expiries):
    order = place(customer_in(str(zone)), plan, local(zone, *ordered))
    seen = [order.expires_at]
    seen.append(renew(order, order.expires_at - timedelta(hours=2)).expires_at)
    assert [timezone.localtime(moment, zone).replace(tzinfo=None) for moment in seen] == [datetime(*e) for e in expiries]


# --- staff extension ------------------------------------------------------------------------------

def test_extension_adds_exact_days_and_later_periods_are_whole_months(plan):
    """The reported case: expiry 2026-12-29 03:48, +3 days = 2027-01-01 03:48 (not Jan 2), then whole months."""
    staff = StaffUserFactory()
    order = place(customer_in(), plan, utc(2026, 11, 29, 3, 48))
    assert order.expires_at == utc(2026, 12, 29, 3, 48)
    with at(utc(2026, 12, 4, 9)):
        order_extend(order=order, actor=staff, days=3, reason="outage")
    order.refresh_from_db()
    assert order.expires_at == utc(2027, 1, 1, 3, 48)
    assert renew(order, utc(2026, 12, 31)).expires_at == utc(2027, 2, 1, 3, 48)
    assert renew(order, utc(2027, 1, 31)).expires_at == utc(2027, 3, 1, 3, 48)


@pytest.mark.parametrize(("ordered", "months", "days", "extended", "renewed"), [
    # Leap February: expires Feb 27, + 3 = Mar 1 (28th, 29th, 1st); renewed to Apr 1.
    (utc(2028, 1, 27, 12), 1, 3, utc(2028, 3, 1, 12), utc(2028, 4, 1, 12)),
    # Non-leap: Feb 27 + 3 = Mar 2.
    (utc(2027, 1, 27, 12), 1, 3, utc(2027, 3, 2, 12), utc(2027, 4, 2, 12)),
    # A yearly order expiring the last second of 2026: + 1 day = 2027-01-01 23:59:59, renewed a year.
    (utc(2025, 12, 31, 23, 59, 59), 12, 1, utc(2027, 1, 1, 23, 59, 59), utc(2028, 1, 1, 23, 59, 59)),
    # Re-anchored on the 31st: Mar 28 + 3 = Mar 31; the next month clamps to Apr 30.
    (utc(2027, 2, 28, 8), 1, 3, utc(2027, 3, 31, 8), utc(2027, 4, 30, 8)),
])
def test_extension_at_month_and_year_ends(currencies, ordered, months, days, extended, renewed):
    plan = PlanFactory()
    order = place(customer_in(), plan, ordered, months=months)
    with at(order.expires_at - timedelta(days=1)):
        order_extend(order=order, actor=StaffUserFactory(), days=days)
    order.refresh_from_db()
    assert order.expires_at == extended
    assert renew(order, extended - timedelta(hours=1)).expires_at == renewed


def test_extension_over_a_dst_night_counts_calendar_days_in_the_customers_zone(plan):
    # Expires Sat 2027-03-27 23:30 CET; + 3 days = Tue 2027-03-30 23:30 CEST, 71 hours later (not 72).
    staff = StaffUserFactory()
    order = place(customer_in("Europe/Amsterdam"), plan, local(AMSTERDAM, 2027, 2, 27, 23, 30))
    assert order.expires_at == local(AMSTERDAM, 2027, 3, 27, 23, 30)
    with at(utc(2027, 3, 20)):
        order_extend(order=order, actor=staff, days=3)
    order.refresh_from_db()
    assert order.expires_at == local(AMSTERDAM, 2027, 3, 30, 23, 30)
    assert order.expires_at - local(AMSTERDAM, 2027, 3, 27, 23, 30) == timedelta(hours=71)


def test_upgrade_after_an_extension_prorates_over_the_stretched_period(currencies):
    """Paid Jan 1 - Feb 1, extended 3 days to Feb 4: the current period is Jan 1 - Feb 4 (34 days).
    Upgrading 10.00 -> 40.00 on Jan 10 costs 30.00 × 25/34 = 22.0588 -> 22.06; after an early
    renewal to Mar 4, 30.00 × (15/34 + 1) = 43.2353 -> 43.24 on Jan 20."""
    small = PlanFactory()
    big = PlanFactory(product_type=small.product_type, prices={(1, "EUR"): "40.00"})
    order = place(customer_in(), small, utc(2027, 1, 1))
    with at(utc(2027, 1, 10)):
        order_extend(order=order, actor=StaffUserFactory(), days=3)
        order.refresh_from_db()
        quote = plan_change.plan_change_quote(order=order, plan=big)
    assert (quote.proration.period_days, quote.proration.remaining_days, quote.proration.later_periods) == (34, 25, 0)
    assert quote.proration.amount == Decimal("22.06")
    order = renew(order, utc(2027, 1, 20))
    assert order.expires_at == utc(2027, 3, 4)
    with at(utc(2027, 1, 20)):
        quote = plan_change.plan_change_quote(order=order, plan=big)
    assert (quote.proration.period_days, quote.proration.remaining_days, quote.proration.later_periods) == (34, 15, 1)
    assert quote.proration.amount == Decimal("43.24")


# --- plan change (proration) ----------------------------------------------------------------------

@pytest.mark.parametrize(("ordered", "today", "days", "amount"), [
    # Jan 31 -> Feb 28 2027 is 28 days; on Feb 14, 14 remain: 30 × 14/28 = 15.00.
    (utc(2027, 1, 31, 10), utc(2027, 2, 14, 10), (28, 14), "15.00"),
    # Leap: Jan 31 -> Feb 29 2028 is 29 days; on Feb 14, 15 remain: 30 × 15/29 = 15.517 -> 15.52.
    (utc(2028, 1, 31, 10), utc(2028, 2, 14, 10), (29, 15), "15.52"),
    # On Feb 28, 1 day remains (Feb 29): 30 × 1/29 = 1.034 -> 1.03.
    (utc(2028, 1, 31, 10), utc(2028, 2, 28, 23), (29, 1), "1.03"),
    # Mar 31 -> Apr 30 is 30 days; on Apr 15, 15 remain: 15.00.
    (utc(2027, 3, 31, 10), utc(2027, 4, 15, 10), (30, 15), "15.00"),
    # Dec 31 -> Jan 31 is 31 days; on Jan 1 00:00:01, 30 remain: 30 × 30/31 = 29.032 -> 29.03.
    (utc(2026, 12, 31, 23, 59, 59), utc(2027, 1, 1, 0, 0, 1), (31, 30), "29.03"),
])
def test_upgrade_proration_in_short_and_long_months(currencies, ordered, today, days, amount):
    small = PlanFactory()
    big = PlanFactory(product_type=small.product_type, prices={(1, "EUR"): "40.00"})
    order = place(customer_in(), small, ordered)
    with at(today):
        quote = plan_change.plan_change_quote(order=order, plan=big)
    assert (quote.proration.period_days, quote.proration.remaining_days) == days
    assert quote.proration.amount == Decimal(amount)


def test_upgrade_proration_counts_days_in_the_customers_zone(currencies):
    # New York customer, ordered 2027-02-28 21:00 EST (Mar 1 02:00 UTC): the period is Feb 28 - Mar 28
    # on their calendar (28 days). At 2027-03-14 21:00 EDT (Mar 15 01:00 UTC) it is still Mar 14
    # there: 14 days remain, 30 × 14/28 = 15.00 (UTC dates would say 13 of 28: 13.93).
    small = PlanFactory()
    big = PlanFactory(product_type=small.product_type, prices={(1, "EUR"): "40.00"})
    order = place(customer_in("America/New_York"), small, local(NEW_YORK, 2027, 2, 28, 21))
    with at(local(NEW_YORK, 2027, 3, 14, 21)):
        quote = plan_change.plan_change_quote(order=order, plan=big)
    assert (quote.proration.period_days, quote.proration.remaining_days) == (28, 14)
    assert quote.proration.amount == Decimal("15.00")


# --- lifecycle deadlines, due window, notices -----------------------------------------------------

@pytest.mark.parametrize(("ordered", "months", "expiry", "suspend_at", "terminate_at"), [
    # Grace 3 days, then 14 more: Feb 27 2028 + 3 = Mar 1 (leap), + 14 = Mar 15.
    (utc(2028, 1, 27, 10), 1, utc(2028, 2, 27, 10), utc(2028, 3, 1, 10), utc(2028, 3, 15, 10)),
    (utc(2027, 1, 27, 10), 1, utc(2027, 2, 27, 10), utc(2027, 3, 2, 10), utc(2027, 3, 16, 10)),
    # Expires the last second of the year.
    (utc(2025, 12, 31, 23, 59, 59), 12, utc(2026, 12, 31, 23, 59, 59), utc(2027, 1, 3, 23, 59, 59),
     utc(2027, 1, 17, 23, 59, 59)),
])
def test_expiry_suspension_and_termination_deadlines(currencies, settings, ordered, months, expiry, suspend_at, terminate_at):
    settings.ORDERS_GRACE_DAYS, settings.ORDERS_TERMINATE_AFTER_DAYS = 3, 14
    order = place(customer_in(), PlanFactory(), ordered, months=months)
    assert order.expires_at == expiry
    order.auto_renew = False
    order.save(update_fields=["auto_renew"])

    def status_at(moment):
        lifecycle.orders_lifecycle_run(now=moment)
        order.refresh_from_db()
        return order.status

    assert status_at(expiry - timedelta(seconds=1)) == Order.Status.ACTIVE
    assert status_at(expiry) == Order.Status.EXPIRED
    assert status_at(suspend_at - timedelta(seconds=1)) == Order.Status.EXPIRED
    assert status_at(suspend_at) == Order.Status.SUSPENDED
    assert status_at(terminate_at - timedelta(seconds=1)) == Order.Status.SUSPENDED
    assert status_at(terminate_at) == Order.Status.TERMINATED


def test_auto_renewal_due_window_and_batch_renewal_over_the_year_change(plan, settings):
    """Due 24 h before expiry: an order expiring 2027-01-01 00:00 is picked up from 2026-12-31 00:00.
    The batch run at 23:59:59 renews it to Feb 1 with an invoice of 2026."""
    settings.ORDERS_RENEW_HOURS_BEFORE_EXPIRY = 24
    order = place(customer_in(), plan, utc(2026, 12, 1))
    assert order.expires_at == utc(2027, 1, 1)
    assert not renewal_batch.due_for_auto_renewal(utc(2026, 12, 30, 23, 59, 59)).filter(pk=order.pk).exists()
    assert renewal_batch.due_for_auto_renewal(utc(2026, 12, 31)).filter(pk=order.pk).exists()
    with at(utc(2026, 12, 31, 23, 59, 59)):
        renewal_batch.renewals_run()
    order.refresh_from_db()
    assert order.expires_at == utc(2027, 2, 1) and order.current_period == 2
    invoice = Invoice.objects.get(kind=Invoice.Kind.RENEWAL, customer=order.customer)
    assert invoice.number.startswith("2026-") and invoice.status == Invoice.Status.PAID


def test_batch_renewal_of_a_feb_29_order(plan):
    order = place(customer_in(), plan, utc(2028, 1, 29, 6))
    assert order.expires_at == utc(2028, 2, 29, 6)
    with at(utc(2028, 2, 28, 12)):
        renewal_batch.renewals_run()
    order.refresh_from_db()
    assert order.expires_at == utc(2028, 3, 29, 6)


def test_expiring_soon_notices_count_days_across_feb_29(plan, settings):
    # Expires 2028-03-01 10:00: the 7-day notice is due from Feb 23 10:00 (7 days: 24 ... 29, Mar 1),
    # the 3-day one from Feb 27 10:00 (28, 29, Mar 1), the 1-day one from Feb 29 10:00.
    settings.ORDERS_EXPIRY_NOTICE_DAYS = (7, 3, 1)
    order = place(customer_in(), plan, utc(2028, 2, 1, 10))
    assert order.expires_at == utc(2028, 3, 1, 10)

    def notices_at(moment):
        lifecycle.orders_lifecycle_run(now=moment)
        return list(Notification.objects.filter(customer=order.customer, kind="service_expiring")
                    .order_by("pk").values_list("context__days_left", flat=True))

    assert notices_at(utc(2028, 2, 23, 9, 59)) == []
    assert notices_at(utc(2028, 2, 23, 10)) == ["7"]
    assert notices_at(utc(2028, 2, 27, 9, 59)) == ["7"]
    assert notices_at(utc(2028, 2, 27, 10)) == ["7", "3"]
    assert notices_at(utc(2028, 2, 29, 9, 59)) == ["7", "3"]
    assert notices_at(utc(2028, 2, 29, 10)) == ["7", "3", "1"]


def test_renewal_forecast_over_the_year_change(plan, settings):
    settings.ORDERS_RENEW_HOURS_BEFORE_EXPIRY = 24
    customer = customer_in(funds="25.00")  # 5.00 left after the two orders
    first = place(customer, plan, utc(2026, 12, 1, 0, 30))  # expires 2027-01-01 00:30, renews at now
    second = place(customer, plan, utc(2026, 12, 31, 12))  # expires 2027-01-31 12:00, renews Jan 30 12:00
    with at(utc(2026, 12, 31, 23, 59, 59)):
        forecast = renewal_forecast(customer=customer)
    assert [(row.order_id, row.renews_at, row.amount) for row in forecast.rows] == [
        (first.pk, utc(2026, 12, 31, 23, 59, 59), Decimal("10.00")),
        (second.pk, utc(2027, 1, 30, 12), Decimal("10.00"))]
    # Neither is covered by 5.00 (the job leaves an unaffordable renewal unpaid): 15.00 short.
    assert (forecast.total, forecast.uncovered, forecast.shortfall) == (Decimal("20.00"), 2, Decimal("15.00"))


# --- acts, numbering, auto-close ------------------------------------------------------------------

def test_last_month_and_its_bounds_are_the_providers_calendar(settings):
    settings.TIME_ZONE = "Europe/Amsterdam"
    # 2026-12-31 23:30 UTC is already 2027-01-01 00:30 in Amsterdam: last month is December 2026.
    with at(utc(2026, 12, 31, 23, 30)):
        assert previous_month() == date(2026, 12, 1)
        # Even inside a request of a customer still on Dec 31 (New York).
        with timezone.override(NEW_YORK):
            assert previous_month() == date(2026, 12, 1)
            assert month_bounds(date(2028, 2, 1)) == (local(AMSTERDAM, 2028, 2, 1), local(AMSTERDAM, 2028, 3, 1))
    with at(utc(2028, 3, 1, 0, 30)):  # March 1 in Amsterdam: last month is the leap February
        assert previous_month() == date(2028, 2, 1)


def test_monthly_acts_for_last_month_take_invoices_by_the_providers_month(currencies, settings):
    settings.TIME_ZONE = "Europe/Amsterdam"
    customer = customer_in(funds="")

    def paid_invoice(moment):
        with at(moment):
            invoice = invoice_issue(customer=customer, kind=Invoice.Kind.ORDER, currency="EUR",
                                    lines=[LineInput(description="VPS", quantity=1, unit_price=Decimal("10.00"))])
            payment_record(idempotency_key=f"act:{moment.isoformat()}", customer=customer, amount=invoice.total,
                           currency="EUR", method="bank_transfer", invoice=invoice)
        invoice.refresh_from_db()
        assert invoice.status == Invoice.Status.PAID
        return invoice

    february = paid_invoice(local(AMSTERDAM, 2028, 2, 29, 23, 30))  # Feb 29 22:30 UTC
    march = paid_invoice(local(AMSTERDAM, 2028, 3, 1, 0, 10))  # still Feb 29 in UTC
    with at(local(AMSTERDAM, 2028, 3, 1, 2)):
        acts = acts_generate(period=previous_month())
    assert len(acts) == 1
    assert acts[0].period == date(2028, 2, 1)
    assert [line.invoice_id for line in acts[0].lines.all()] == [february.pk]
    assert march.pk not in [line.invoice_id for line in acts[0].lines.all()]
    assert acts[0].number == "ACT-2028-000001"


def test_document_numbers_restart_at_the_providers_new_year(currencies, settings):
    settings.TIME_ZONE = "Europe/Amsterdam"
    customer = customer_in(funds="")

    def issue(moment, zone=None):
        with at(moment), timezone.override(zone or AMSTERDAM):
            return invoice_issue(customer=customer, kind=Invoice.Kind.ORDER, currency="EUR",
                                 lines=[LineInput(description="VPS", quantity=1, unit_price=Decimal("1.00"))]).number

    assert issue(local(AMSTERDAM, 2026, 12, 31, 23, 59, 59)) == "2026-000001"
    # The same instant seen from UTC+14 (already Jan 1 there) still belongs to the provider's 2026.
    assert issue(local(AMSTERDAM, 2026, 12, 31, 23, 59, 59), zoneinfo.ZoneInfo("Pacific/Kiritimati")) == "2026-000002"
    assert issue(local(AMSTERDAM, 2027, 1, 1, 0, 0, 0)) == "2027-000001"
    # From New York (still Dec 31 18:00 there) a moment later: the provider's 2027.
    assert issue(local(AMSTERDAM, 2027, 1, 1, 0, 0, 1), NEW_YORK) == "2027-000002"


def test_ticket_autoclose_counts_days_across_feb_29(settings, departments):
    # Answered 2028-02-25 12:00; close after 7 days with a warning 2 days ahead: warned from
    # Mar 1 12:00 (26, 27, 28, 29, Mar 1), closed from Mar 3 12:00.
    settings.TICKETS_AUTOCLOSE_DAYS, settings.TICKETS_AUTOCLOSE_WARNING_DAYS = 7, 2
    ticket = TicketFactory(status=Ticket.Status.ANSWERED, status_changed_at=utc(2028, 2, 25, 12))
    assert tickets_autoclose_sweep(now=utc(2028, 3, 1, 11, 59)) == {"warned": 0, "closed": 0}
    assert tickets_autoclose_sweep(now=utc(2028, 3, 1, 12)) == {"warned": 1, "closed": 0}
    assert tickets_autoclose_sweep(now=utc(2028, 3, 3, 11, 59)) == {"warned": 0, "closed": 0}
    assert tickets_autoclose_sweep(now=utc(2028, 3, 3, 12)) == {"warned": 0, "closed": 1}
    ticket.refresh_from_db()
    assert ticket.status == Ticket.Status.CLOSED


def test_low_balance_alert_once_per_crossing_over_the_year_change(plan):
    # Threshold 15.00 on a 25.00 balance: the order (10.00) at Dec 31 23:59:59 leaves 15.00 (no alert),
    # its renewal at Jan 1 leaves 5.00 (one alert), a 15.00 top-up (20.00) re-arms, the next renewal
    # (10.00 left) alerts again.
    customer = customer_in(funds="25.00")
    customer.low_balance_threshold = Decimal("15.00")
    customer.save(update_fields=["low_balance_threshold"])
    alerts = Notification.objects.filter(customer=customer, kind="low_balance")
    order = place(customer, plan, utc(2026, 12, 31, 23, 59, 59))
    assert alerts.count() == 0
    renew(order, utc(2027, 1, 1, 0, 0, 1))
    assert alerts.count() == 1
    with at(utc(2027, 1, 1, 12)):
        payment_record(idempotency_key="calendar:topup", customer=customer, amount=Decimal("15.00"),
                       currency=customer.currency, method="bank_transfer")
    renew(order, utc(2027, 1, 2))
    assert alerts.count() == 2
