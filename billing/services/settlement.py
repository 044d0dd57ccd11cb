"""Account deletion: settling the money (open invoices cancelled, the balance refunded by bank or written off)."""

from django.db import transaction
from django.utils.translation import gettext as _

from accounts.models import Customer

from .. import hooks
from ..models import Invoice, LedgerAccount, LedgerEntry
from ..money import format_money
from .corrections import balance_write_off
from .errors import BillingError
from .invoices import invoice_cancel
from .ledger import customer_account
from .refunds import payment_refund_sent_by_bank


class DeletionSettlement:
    REFUND_BANK = "refund_bank"  # staff send the balance back by bank transfer
    WRITE_OFF = "write_off"      # the provider forgives / keeps it

    choices = ((REFUND_BANK, _("Refund by bank transfer")), (WRITE_OFF, _("Write off")))


@transaction.atomic
def customer_settle_for_deletion(*, customer: Customer, deletion_request, method: str, reason: str, actor,
                                 bank_reference: str = "") -> list:
    """Before staff approve an account deletion: cancel the customer's open invoices (what was applied
    returns to the balance), then settle every balance through the ledger's own paths:

    - refund: staff send the balance back by bank transfer; it is recorded as refunds of the payments
      that brought it, newest first, each with the bank's reference (`payment_refund_sent_by_bank`:
      the money leaves through clearing at the payment's own rate, and the audit reconciles it).
      Money no payment brought (a credit note, a staff adjustment) is refused: write it off or
      refund it explicitly;
    - write-off: `balance_write_off` (a negative balance is always written off).

    A second submit finds nothing left to settle; money arriving later is settled by the next run."""
    if method not in (DeletionSettlement.REFUND_BANK, DeletionSettlement.WRITE_OFF):
        raise BillingError(_("Choose a refund or a write-off."), code="method")
    if not reason.strip():
        raise BillingError(_("A reason is required."), code="reason")
    if method == DeletionSettlement.REFUND_BANK and not bank_reference.strip():
        raise BillingError(_("Enter the bank's transaction reference."), code="bank_reference")
    if deletion_request.customer_id != customer.pk or deletion_request.status != deletion_request.Status.PENDING:
        raise BillingError(_("Only a pending deletion request of this customer can be settled."), code="request")
    # Lock order: owners of the invoices, the invoices, then (inside each posting) the accounts.
    open_invoices = list(Invoice.objects.filter(customer=customer, status__in=Invoice.OPEN_STATUSES).order_by("pk"))
    for invoice in open_invoices:
        hooks.lock_invoice_owners(invoice)
    for invoice in Invoice.objects.select_for_update().filter(pk__in=[i.pk for i in open_invoices]).order_by("pk"):
        invoice_cancel(invoice=invoice, reason="account deletion", actor=actor)
    settled: list = []
    if method == DeletionSettlement.REFUND_BANK:
        settled += _refund_balance_by_bank(customer=customer, reason=reason, actor=actor, bank_reference=bank_reference)
    last_entry = (LedgerEntry.objects.filter(account__customer=customer, account__kind=LedgerAccount.Kind.CUSTOMER)
                  .order_by("-pk").values_list("pk", flat=True).first())
    if method == DeletionSettlement.WRITE_OFF or LedgerAccount.objects.filter(
            customer=customer, kind=LedgerAccount.Kind.CUSTOMER, balance__lt=0).exists():
        settled += balance_write_off(customer=customer, reason=reason, actor=actor,
                                     idempotency_key=f"deletion-settlement:{deletion_request.pk}:{last_entry}")
    return settled


def _refund_balance_by_bank(*, customer: Customer, reason: str, actor, bank_reference: str) -> list:
    """Refund the positive balance as bank refunds of the payments that put money on it, newest first."""
    from ..selectors import refundable_payments

    account = customer_account(customer=customer)
    balance = LedgerAccount.objects.get(pk=account.pk).balance
    refunds = []
    for payment, refundable in refundable_payments(customer):
        if balance <= 0:
            break
        if payment.currency != account.currency:
            continue  # another currency's payment: its share was converted; staff refund it from the payment
        invoice = payment.invoice
        if invoice is not None and invoice.kind != Invoice.Kind.ADVANCE and invoice.status != Invoice.Status.CANCELLED:
            continue  # it paid for a service: that money is not on the balance
        amount = min(balance, refundable)
        refunds.append(payment_refund_sent_by_bank(payment=payment, amount=amount, bank_reference=bank_reference,
                                                   reason=reason, actor=actor))
        balance -= amount
    if balance > 0:
        raise BillingError(_("%(amount)s of the balance did not come from a payment that can be refunded: write it off, "
                             "or refund it from the payment it came from.") % {"amount": format_money(balance, account.currency)},
                           code="not_refundable")
    return refunds
