"""Bank transfer: the customer sees our bank details with the invoice number as the reference;
staff record the received transfer in admin (BankTransferReceipt), which calls payment_record."""
from django.conf import settings
from django.utils.translation import gettext_lazy as _

from ..base import Gateway, StartResult


class BankTransferGateway(Gateway):
    code = "bank_transfer"
    name = _("Bank transfer")
    redirects = False

    def is_configured(self) -> bool:
        details = settings.BANK_TRANSFER_DETAILS
        return bool(details.get("iban") and details.get("beneficiary"))

    def start_payment(self, *, attempt, description, success_url, cancel_url) -> StartResult:
        return StartResult(instructions=self.instructions(reference=attempt.invoice.number if attempt.invoice_id else ""))

    def instructions(self, *, reference: str) -> dict:
        return {**settings.BANK_TRANSFER_DETAILS, "reference": reference}
