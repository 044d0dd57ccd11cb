"""Dunning: payment reminders on configured days around an invoice's due date, and an optional late fee.

Rule (docs/ARCHITECTURE.md, "Dunning"): a service invoice (not an advance top-up) is due
`BILLING_INVOICE_DUE_DAYS` 24-hour days after it was issued. Each day in `BILLING_DUNNING_DAYS`
(relative to the due date, negative before it) is a step; a step is sent at most once per invoice: a
`DunningNotice(invoice, step)` row is inserted first and its unique constraint decides between
parallel runs. When several steps have passed (the job was down), only the latest is sent and the
earlier ones are recorded unsent. Steps on or before the due date are `invoice_reminder` (the
customer may turn it off); later ones are `invoice_overdue` (mandatory). With
`BILLING_LATE_FEE_PERCENT` > 0, an invoice still open `BILLING_LATE_FEE_AFTER_DAYS` after its due
date gets one late-fee invoice (`latefee:<invoice id>` is its unique idempotency key) of that percent
of its subtotal, rounded half up; it carries no VAT (compensation, not a supply) and is paid like any
invoice, through the ledger. Paid and cancelled invoices get nothing.
"""
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.formats import date_format
from django.utils.translation import gettext as _

from notifications.kinds import Kind
from notifications.services import notify

from . import hooks
from .models import DunningNotice, Invoice
from .money import format_money, quantize
from .services.invoices import LineInput, invoice_issue

NOT_DUNNED = (Invoice.Kind.ADVANCE,)
NO_LATE_FEE = (Invoice.Kind.ADVANCE, Invoice.Kind.LATE_FEE)


@dataclass
class DunningSummary:
    reminded: int = 0
    late_fees: int = 0


def invoice_due_at(invoice: Invoice) -> datetime:
    return invoice.issued_at + timedelta(days=settings.BILLING_INVOICE_DUE_DAYS)


def _date(moment: datetime, language: str) -> str:
    with translation.override(language):
        return date_format(timezone.localtime(moment).date(), "DATE_FORMAT")


# Namespace for pg_advisory_xact_lock(namespace, invoice_id): one late-fee decision per invoice at a time.
# Taken before anything else in its transaction and by nothing else, so it adds no lock-order cycle.
LATE_FEE_LOCK = 8201


def _late_fee_of(invoice: Invoice) -> Invoice | None:
    return Invoice.objects.filter(idempotency_key=f"latefee:{invoice.pk}").first()


def late_fee_issue(*, invoice_id: int) -> Invoice | None:
    """Issue the late fee of an open invoice once; None when it is not open or already charged."""
    try:
        with transaction.atomic():
            # Without it a parallel run that checked before the winner committed would get the winner's
            # fee back from invoice_issue's idempotency key and count it as its own.
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [LATE_FEE_LOCK, invoice_id])
            invoice = Invoice.objects.select_related("customer").get(pk=invoice_id)
            if not invoice.is_open or invoice.kind in NO_LATE_FEE or _late_fee_of(invoice) is not None:
                return None
            percent = settings.BILLING_LATE_FEE_PERCENT
            amount = quantize(invoice.subtotal * percent / 100, invoice.currency)
            if amount <= 0:
                return None
            with translation.override(invoice.customer.language):
                text = _("Late fee for invoice %(number)s (%(percent)s%%)") % {
                    "number": invoice.number, "percent": f"{percent.normalize():f}"}
            return invoice_issue(customer=invoice.customer, kind=Invoice.Kind.LATE_FEE, currency=invoice.currency,
                                 lines=[LineInput(description=text, quantity=1, unit_price=amount,
                                                  reference=f"latefee:{invoice.pk}")],
                                 idempotency_key=f"latefee:{invoice.pk}", reference=f"latefee:{invoice.pk}",
                                 untaxed=True)
    except IntegrityError:
        return None


def _remind(invoice_id: int, now: datetime) -> bool:
    """Send the latest passed step of one invoice if nobody has; True when this call sent it."""
    steps = settings.BILLING_DUNNING_DAYS
    with transaction.atomic():
        invoice = Invoice.objects.select_related("customer").get(pk=invoice_id)
        if not invoice.is_open:
            return False
        due = invoice_due_at(invoice)
        passed = [step for step in steps if due + timedelta(days=step) <= now]
        if not passed:
            return False
        done = set(invoice.dunning_notices.values_list("step", flat=True))
        latest = passed[-1]
        if latest in done:
            return False
        try:
            with transaction.atomic():  # savepoint: a parallel run that inserted it first wins
                DunningNotice.objects.create(invoice=invoice, step=latest)
        except IntegrityError:
            return False
        DunningNotice.objects.bulk_create(
            [DunningNotice(invoice=invoice, step=step, notified=False) for step in passed[:-1] if step not in done],
            ignore_conflicts=True)
        customer = invoice.customer
        fee = _late_fee_of(invoice)
        context = {
            **hooks.invoice_email_context(invoice),
            "invoice_number": invoice.number, "invoice_id": invoice.pk,
            "amount": format_money(invoice.total - invoice.amount_paid, invoice.currency, customer.language),
            "due_date": _date(due, customer.language),
        }
        if latest > 0:
            kind = Kind.INVOICE_OVERDUE
            context.update(days_overdue=(now - due).days,
                           late_fee=format_money(fee.total, fee.currency, customer.language) if fee else "")
        else:
            kind = Kind.INVOICE_REMINDER
        notify(customer=customer, kind=kind, context=context, link=reverse("billing:invoice_detail", args=[invoice.pk]),
               dedupe_key=f"invoice:{invoice.pk}:dunning:{latest}")
        return True


def dunning_run(*, now: datetime | None = None) -> DunningSummary:
    """Late fees, then reminders, for every open invoice that has a step due. Idempotent; safe to run
    in parallel (the unique keys decide)."""
    now = now or timezone.now()
    summary = DunningSummary()
    open_invoices = Invoice.objects.filter(status__in=Invoice.OPEN_STATUSES)
    due_days = settings.BILLING_INVOICE_DUE_DAYS
    if settings.BILLING_LATE_FEE_PERCENT > 0:
        late = (open_invoices.exclude(kind__in=NO_LATE_FEE)
                .filter(issued_at__lte=now - timedelta(days=due_days + settings.BILLING_LATE_FEE_AFTER_DAYS)))
        for invoice_id in late.order_by("pk").values_list("pk", flat=True):
            if late_fee_issue(invoice_id=invoice_id) is not None:
                summary.late_fees += 1
    steps = settings.BILLING_DUNNING_DAYS
    if steps:
        candidates = (open_invoices.exclude(kind__in=NOT_DUNNED)
                      .filter(issued_at__lte=now - timedelta(days=due_days + steps[0]))
                      .exclude(dunning_notices__step=steps[-1]))  # finished
        for invoice_id in candidates.order_by("pk").values_list("pk", flat=True):
            if _remind(invoice_id, now):
                summary.reminded += 1
    return summary
