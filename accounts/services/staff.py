"""Staff decisions on a customer profile (admin): verifying or rejecting a company."""
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils.translation import gettext as _

from ..models import Customer, User
from .activity import activity_record
from .locks import customer_lock


@transaction.atomic
def customer_verify_company(*, customer: Customer, staff: User) -> Customer:
    locked = customer_lock(customer)
    if locked.profile_type != Customer.ProfileType.COMPANY:
        raise ValidationError(_("Only company profiles are verified."), code="not_company")
    locked.verification_status, locked.verification_note = Customer.Verification.VERIFIED, ""
    locked.save(update_fields=["verification_status", "verification_note"])
    activity_record(action="company_verified", customer=locked, actor=staff, visible_to_customer=False)
    return locked


@transaction.atomic
def customer_reject_company(*, customer: Customer, staff: User, reason: str) -> Customer:
    if not reason.strip():
        raise ValidationError(_("Give the reason the customer will see."), code="no_reason")
    locked = customer_lock(customer)
    if locked.profile_type != Customer.ProfileType.COMPANY:
        raise ValidationError(_("Only company profiles are verified."), code="not_company")
    locked.verification_status, locked.verification_note = Customer.Verification.REJECTED, reason.strip()
    locked.save(update_fields=["verification_status", "verification_note"])
    activity_record(action="company_rejected", customer=locked, actor=staff, visible_to_customer=False,
                    details={"reason": reason.strip()})
    return locked
