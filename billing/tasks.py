"""Periodic billing jobs; each is idempotent (safe to run twice)."""
from celery import shared_task

from accounts.models import Customer

from . import dunning
from .models import Invoice
from .services import acts, ledger, payers, payments, rates


@shared_task
def refresh_rates() -> int:
    return rates.rates_refresh_ecb()


@shared_task
def low_balance_sweep() -> int:
    return ledger.low_balance_sweep()


@shared_task
def invoices_pay_from_balance_sweep() -> int:
    """Retry paying open service invoices from the balance for customers who have money on it (e.g.
    after a failed on_commit)."""
    customer_ids = (
        Invoice.objects.filter(status=Invoice.Status.UNPAID).exclude(kind=Invoice.Kind.ADVANCE)
        .filter(customer__ledger_accounts__balance__gt=0).values_list("customer_id", flat=True).distinct()
    )
    paid = 0
    for customer in Customer.objects.filter(pk__in=list(customer_ids)):
        paid += payments.invoices_pay_from_balance(customer=customer)
    return paid


@shared_task
def acts_generate_previous_month() -> int:
    """Daily: close last month's acts (idempotent, so a missed day is caught up the next)."""
    return len(acts.acts_generate(period=acts.previous_month()))


@shared_task
def dunning_run() -> int:
    """Hourly: reminders and late fees that are due (each step once per invoice)."""
    return dunning.dunning_run().reminded


@shared_task
def vies_recheck() -> int:
    """Every 6 hours: ask VIES again about numbers it could not answer for (billing/vat.py)."""
    return payers.payers_vies_recheck()
