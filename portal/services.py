"""Back-office writes that span apps. Each calls the owning app's service and records the staff audit row."""
from django.db import transaction

from accounts.models import User
from accounts.services.activity import activity_record
from notifications.services import email_retry


@transaction.atomic
def outbox_retry_by_staff(*, email_ids: list[int], staff: User) -> int:
    """Give failed emails a fresh set of attempts (notifications' service) and audit who did it."""
    queued = email_retry(email_ids=email_ids)
    activity_record(action="notifications.email_retried", actor=staff, visible_to_customer=False,
                    details={"emails": sorted(email_ids), "queued": queued})
    return queued
