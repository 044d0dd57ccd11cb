"""Billing's refusals, raised by every services module: the message is shown to the user as is."""

from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _


class BillingError(ValidationError):
    """A refused billing operation; the message is shown to the user as is."""


class InsufficientFunds(BillingError):
    pass


class PaymentConflict(BillingError):
    """The idempotency key was already used for a different payment."""


PAYER_UNVERIFIED = "payer_unverified"  # the blocker code of an unverified payer chosen on the invoice


def blockers_need_profile(blockers: list[dict]) -> bool:
    """True when something in the customer's profile (not only the invoice's payer) must be fixed."""
    return any(blocker["code"] != PAYER_UNVERIFIED for blocker in blockers)


class PaymentBlocked(BillingError):
    def __init__(self, blockers: list[dict]):
        # A payer's blocker says what to do itself; profile blockers are listed with links on the page.
        message = blockers[0]["message"] if blockers and not blockers_need_profile(blockers) else _("Complete your profile before paying.")
        super().__init__(message, code="payment_blocked")
        self.blockers = blockers
