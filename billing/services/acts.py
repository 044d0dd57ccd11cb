"""Acts (monthly certificates of services rendered), issued after the month has ended."""

import datetime as dt

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext as _

from core.calendar import provider_today

from accounts.models import Customer

from ..models import ZERO, Act, ActLine, Invoice, Payer
from .errors import BillingError
from .numbering import document_number, document_numbers_reserve
from ..selectors import payer_details, payer_snapshot_fields
from .payers import payer_profile_get_or_create


ACT_STATUSES = (Invoice.Status.PAID, Invoice.Status.REFUNDED)


def month_bounds(period) -> tuple:
    """[start, end) of the calendar month containing `period`, in the provider's time zone."""
    first = period.replace(day=1)
    following = (first + dt.timedelta(days=32)).replace(day=1)
    tz = timezone.get_default_timezone()
    return (timezone.make_aware(dt.datetime.combine(first, dt.time.min), tz),
            timezone.make_aware(dt.datetime.combine(following, dt.time.min), tz))


def _act_invoices(*, customer_id: int, payer: Payer, currency: str, period):
    """The service invoices paid in the month for this payer and currency (invoices without a payer
    were made out to the profile)."""
    start, end = month_bounds(period)
    payer_q = Q(payer=payer) | Q(payer__isnull=True) if payer.is_profile else Q(payer=payer)
    return (Invoice.objects.filter(customer_id=customer_id, currency=currency, status__in=ACT_STATUSES,
                                   paid_at__gte=start, paid_at__lt=end)
            .exclude(kind=Invoice.Kind.ADVANCE).filter(payer_q).order_by("paid_at", "pk"))


class _NothingToIssue(Exception):
    """Rolls back act_issue's savepoint (and its number): the act exists or has no invoices."""


def act_issue(*, customer: Customer, payer: Payer, currency: str, period) -> Act | None:
    """The act for (customer, payer, currency, month), or None if it exists already or there is
    nothing to certify. The counter row is locked first, so concurrent runs are serialised and a
    run that finds the act made meanwhile rolls back its number: the series stays gap-free."""
    period = period.replace(day=1)
    try:
        with transaction.atomic():
            if Act.objects.filter(customer=customer, payer=payer, currency=currency, period=period).exists():
                raise _NothingToIssue
            year, sequence = document_numbers_reserve(series="ACT")
            if Act.objects.filter(customer=customer, payer=payer, currency=currency, period=period).exists():
                raise _NothingToIssue  # made by a run that held the counter before us
            invoices = list(_act_invoices(customer_id=customer.pk, payer=payer, currency=currency, period=period)
                            .prefetch_related("lines"))
            if not invoices:
                raise _NothingToIssue
            details = payer_details(payer)
            subtotal = sum((i.subtotal for i in invoices), ZERO)
            tax_amount = sum((i.tax_amount for i in invoices), ZERO)
            snapshot = payer_snapshot_fields(details)
            snapshot.pop("payer_email")
            act = Act.objects.create(
                number=document_number(series="ACT", year=year, sequence=sequence), year=year, sequence=sequence, customer=customer, payer=payer,
                currency=currency, period=period, subtotal=subtotal, tax_amount=tax_amount, total=subtotal + tax_amount,
                payer_registration_number=details.registration_number, **snapshot,
            )
            ActLine.objects.bulk_create([
                ActLine(act=act, position=n, invoice=invoice, date=invoice.paid_at, subtotal=invoice.subtotal,
                        tax_amount=invoice.tax_amount, total=invoice.total,
                        description=(f"{invoice.number}: " + "; ".join(line.description for line in invoice.lines.all()))[:500])
                for n, invoice in enumerate(invoices)
            ])
            return act
    except (_NothingToIssue, IntegrityError):
        return None


def acts_generate(*, period) -> list[Act]:
    """Issue the missing acts for the month containing `period` (beat job and `manage.py generate_acts`).
    Idempotent: an act exists at most once per (customer, payer, currency, month)."""
    start, end = month_bounds(period)
    if start.date() >= provider_today().replace(day=1):
        # An act for a running month would miss the rest of its charges: it is issued once, never amended.
        raise BillingError(_("Acts are issued after the month has ended."), code="month_not_over")
    groups = (
        Invoice.objects.filter(status__in=ACT_STATUSES, paid_at__gte=start, paid_at__lt=end, act_lines__isnull=True)
        .exclude(kind=Invoice.Kind.ADVANCE).values_list("customer_id", "payer_id", "currency").distinct()
        .order_by("customer_id", "payer_id", "currency")
    )
    made = []
    for customer_id, payer_id, currency in list(groups):
        customer = Customer.objects.get(pk=customer_id)
        payer = Payer.objects.get(pk=payer_id) if payer_id else payer_profile_get_or_create(customer=customer)
        act = act_issue(customer=customer, payer=payer, currency=currency, period=start.date())
        if act is not None:
            made.append(act)
    return made


def previous_month() -> dt.date:
    """First day of last month (the month the daily act job closes)."""
    return (provider_today().replace(day=1) - dt.timedelta(days=1)).replace(day=1)
