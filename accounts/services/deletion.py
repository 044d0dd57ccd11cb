"""Account deletion: the owner's request, staff review, and the erasure that keeps financial records."""
import functools

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from .. import personal_data
from ..models import ActivityEvent, Customer, DataExport, DeletionRequest, PhoneVerification, PolicyAcceptance, User
from .activity import activity_record, security_event_record
from .locks import customer_lock


@transaction.atomic
def deletion_request_create(*, customer: Customer, user: User, reason: str = "", ip: str | None = None
                            ) -> DeletionRequest:
    from django.db import IntegrityError

    customer_lock(customer)
    try:
        with transaction.atomic():
            request = DeletionRequest.objects.create(customer=customer, requested_by=user, reason=reason.strip()[:2000])
    except IntegrityError:
        raise ValidationError(_("Your request is already awaiting review."), code="pending")
    security_event_record(user=user, action="deletion_requested", ip=ip,
                          change=gettext_lazy("Account deletion requested"))
    return request


@transaction.atomic
def deletion_request_cancel(*, customer: Customer, user: User, ip: str | None = None) -> None:
    request = DeletionRequest.objects.select_for_update().filter(
        customer=customer, status=DeletionRequest.Status.PENDING).first()
    if request is None:
        raise ValidationError(_("There is no pending deletion request."), code="none")
    request.status = DeletionRequest.Status.CANCELLED
    request.save(update_fields=["status"])
    activity_record(action="deletion_cancelled", customer=customer, actor=user, ip=ip)


@transaction.atomic
def deletion_request_reject(*, deletion_request: DeletionRequest, staff: User, note: str) -> DeletionRequest:
    if not note.strip():
        raise ValidationError(_("Give the reason the customer will see."), code="no_reason")
    request = DeletionRequest.objects.select_for_update().get(pk=deletion_request.pk)
    if request.status != DeletionRequest.Status.PENDING:
        raise ValidationError(_("This request has already been reviewed."), code="reviewed")
    request.status, request.staff_note = DeletionRequest.Status.REJECTED, note.strip()
    request.reviewed_by, request.reviewed_at = staff, timezone.now()
    request.save(update_fields=["status", "staff_note", "reviewed_by", "reviewed_at"])
    activity_record(action="deletion_rejected", customer=request.customer, actor=staff, details={"note": request.staff_note})
    return request


@transaction.atomic
def deletion_request_approve(*, deletion_request: DeletionRequest, staff: User) -> DeletionRequest:
    request = DeletionRequest.objects.select_for_update().get(pk=deletion_request.pk)
    if request.status != DeletionRequest.Status.PENDING:
        raise ValidationError(_("This request has already been reviewed."), code="reviewed")
    # Checked under the customer lock customer_erase takes anyway. Money arriving later (a late bank
    # transfer) lands on the anonymized account's balance, which staff see and settle like any other.
    list(Customer.objects.select_for_update(no_key=True).filter(pk=request.customer_id).values_list("pk", flat=True))
    unsettled = [item for item in personal_data.deletion_open_items(request.customer) if item.blocks]
    if unsettled:
        raise ValidationError(
            _("Settle the account's money first (refund or write off the balance, settle open invoices): %(items)s")
            % {"items": "; ".join(f"{item.label}: {item.value}" for item in unsettled)}, code="unsettled")
    customer_erase(customer=request.customer, actor=staff)
    request.status, request.reviewed_by, request.reviewed_at = DeletionRequest.Status.COMPLETED, staff, timezone.now()
    request.reason = ""
    request.save(update_fields=["status", "reviewed_by", "reviewed_at", "reason"])
    return request


@transaction.atomic
def customer_erase(*, customer: Customer, actor: User | None) -> Customer:
    """Terminate the services, then anonymize every personal field of the account and its users.

    Financial records stay: the ledger is untouched and invoices keep the payer snapshot taken at
    issue, as accounting law requires. Registered apps run their handlers first (services end).
    """
    from allauth.account.models import EmailAddress
    from allauth.socialaccount.models import SocialAccount
    from django_otp import devices_for_user

    locked = customer_lock(customer)
    if locked.anonymized_at is not None:
        raise ValidationError(_("This account has already been anonymized."), code="anonymized")
    for handler in personal_data.erasure_handlers():
        handler(locked, actor)

    files = []
    users = list(User.objects.select_for_update().filter(customer=locked).order_by("pk"))
    for user in users:
        if user.avatar:
            files.append((user.avatar.storage, user.avatar.name))
        for device in devices_for_user(user, confirmed=None):
            device.delete()
        user.username = f"erased-{user.pk}"
        user.first_name = user.last_name = user.email = user.pending_email = user.phone = ""
        user.email_verified = user.phone_verified = False
        user.avatar = ""
        user.is_active = False
        user.set_unusable_password()
        user.save()
    SocialAccount.objects.filter(user__in=users).delete()
    EmailAddress.objects.filter(user__in=users).delete()
    PhoneVerification.objects.filter(user__in=users).delete()
    PolicyAcceptance.objects.filter(user__in=users).update(ip=None)
    for export in DataExport.objects.filter(customer=locked).exclude(file=""):
        files.append((export.file.storage, export.file.name))
    DataExport.objects.filter(customer=locked).delete()
    # The audit trail stays (what happened, when), without addresses and free-text details.
    ActivityEvent.objects.filter(customer=locked).update(ip=None, details={})

    for field in ("street", "city", "postcode", "company_name", "company_registration_number", "company_vat_number",
                  "verification_note", "email_billing", "email_support", "email_abuse", "code_word_hash",
                  "ip_allowlist"):
        setattr(locked, field, "")
    locked.newsletter = locked.login_alerts = locked.show_last_login = locked.pay_without_login = False
    locked.anonymized_at = timezone.now()
    locked.save()
    activity_record(action="account_anonymized", customer=locked, actor=actor, visible_to_customer=False)
    for storage, name in files:
        transaction.on_commit(functools.partial(storage.delete, name))
    return locked
