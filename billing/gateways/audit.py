"""The gateways' part of `manage.py audit_ledger` (registered with billing.audit.register_check)."""
from django.db.models import Q

from billing.models import Payment

from .models import PaymentAttempt


def attempt_mismatches() -> list[str]:
    """Every successful gateway payment reached the ledger as a Payment, and what the gateway refunded
    is what the ledger refunded from that payment."""
    attempts = PaymentAttempt.objects.filter(status__in=[PaymentAttempt.Status.SUCCEEDED, PaymentAttempt.Status.REFUNDED]) \
        .exclude(purpose=PaymentAttempt.Purpose.SETUP)
    payments = dict(Payment.objects.filter(pk__in=attempts.values("payment_id")).values_list("pk", "refunded_amount"))
    failures = []
    for reference, payment_id, refunded in attempts.values_list("reference", "payment_id", "refunded_amount"):
        if payment_id not in payments:
            failures.append(f"gateway payment {reference} succeeded but has no payment in the ledger")
        elif payments[payment_id] != refunded:
            failures.append(f"gateway payment {reference}: {refunded} refunded at the gateway but {payments[payment_id]} in the ledger")
    stray = PaymentAttempt.objects.filter(~Q(status__in=[PaymentAttempt.Status.SUCCEEDED, PaymentAttempt.Status.REFUNDED]),
                                          refunded_amount__gt=0).values_list("reference", flat=True)
    failures += [f"gateway payment {reference} has refunds but did not succeed" for reference in stray]
    return failures
