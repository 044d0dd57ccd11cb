"""Bank transfer: the customer sees our bank account (billing's, also printed on open invoices) with the
invoice number as the reference; staff record the received transfer in admin (BankTransferReceipt),
which calls payment_record."""
from django.utils.translation import gettext_lazy as _

from billing.selectors import bank_account

from ..base import Gateway, StartResult


class BankTransferGateway(Gateway):
    code = "bank_transfer"
    name = _("Bank transfer")
    redirects = False

    def is_configured(self) -> bool:
        return bool(bank_account())

    def start_payment(self, *, attempt, description, success_url, cancel_url) -> StartResult:
        return StartResult(instructions=self.instructions(reference=attempt.invoice.number if attempt.invoice_id else ""))

    def instructions(self, *, reference: str) -> dict:
        return {**bank_account(), "reference": reference}
