"""Export my data: a ZIP of the customer's personal data (ours and every registered app's), built by a task."""
import csv
import functools
import io
import json
import logging
import zipfile
from datetime import timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from core.enqueue import enqueue_task_on_commit

from .. import personal_data
from ..models import ActivityEvent, Customer, DataExport, PolicyAcceptance, User
from .activity import activity_record

logger = logging.getLogger(__name__)


@transaction.atomic
def data_export_request(*, customer: Customer, user: User, ip: str | None = None) -> DataExport:
    from django.db import IntegrityError

    try:
        with transaction.atomic():
            export = DataExport.objects.create(customer=customer, requested_by=user)
    except IntegrityError:
        raise ValidationError(_("An export is already being prepared. It will appear here in a few minutes."),
                              code="pending")
    activity_record(action="data_export_requested", customer=customer, actor=user, ip=ip)
    from ..tasks import data_export_build_task

    # The export row is the outbox: a broker outage is logged and data_exports_sweep builds it later.
    enqueue_task_on_commit(data_export_build_task, export_id=export.pk)
    return export


FORMULA_LEADERS = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: str) -> str:
    """Text someone typed, made inert for spreadsheets: a leading = + - @ tab or CR would start a
    formula (`=HYPERLINK(...)`) when the owner opens the export, so it gets a leading apostrophe."""
    return "'" + value if value.startswith(FORMULA_LEADERS) else value


def _csv_bytes(rows: list[dict]) -> bytes:
    from django.core.serializers.json import DjangoJSONEncoder

    columns: list[str] = []
    for row in rows:
        columns += [key for key in row if key not in columns]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns)
    writer.writeheader()
    for row in rows:
        writer.writerow({key: json.dumps(value, cls=DjangoJSONEncoder, ensure_ascii=False)
                         if isinstance(value, (list, dict)) else "" if value is None
                         else csv_cell(value) if isinstance(value, str) else value
                         for key, value in row.items()})
    return buffer.getvalue().encode("utf-8-sig")  # BOM: spreadsheets open UTF-8 correctly


def _own_sections(customer: Customer) -> dict[str, list[dict]]:
    from allauth.socialaccount.models import SocialAccount

    profile = {
        "client_id": customer.pk, "created_at": customer.created_at, "profile_type": customer.profile_type,
        "company_name": customer.company_name, "company_registration_number": customer.company_registration_number,
        "company_vat_number": customer.company_vat_number, "street": customer.street, "city": customer.city,
        "postcode": customer.postcode, "country": customer.country, "account_currency": customer.currency,
        "site_currency": customer.site_currency, "language": customer.language, "time_zone": customer.timezone,
        "newsletter": customer.newsletter, "email_billing": customer.email_billing,
        "email_support": customer.email_support, "email_abuse": customer.email_abuse,
        "ip_allowlist": customer.ip_allowlist,
    }
    users = list(customer.users.order_by("pk"))
    linked = {}
    for account in SocialAccount.objects.filter(user__in=users).order_by("pk"):
        linked.setdefault(account.user_id, []).append(account.provider)
    return {
        "profile": [profile],
        "users": [{
            "username": user.username, "first_name": user.first_name, "last_name": user.last_name,
            "email": user.email, "phone": user.phone, "role": user.role, "is_active": user.is_active,
            "date_joined": user.date_joined, "last_login": user.last_login, "linked_logins": linked.get(user.pk, []),
        } for user in users],
        "activity": [{
            "date": event.created_at, "action": event.action, "user": event.actor.username if event.actor else "",
            "ip": event.ip or "", "details": event.details,
        } for event in ActivityEvent.objects.filter(customer=customer, visible_to_customer=True)
            .select_related("actor").order_by("created_at", "pk")],
        "policy_acceptances": [{
            "document": acceptance.policy.kind, "version": acceptance.policy.version,
            "user": acceptance.user.username, "accepted_at": acceptance.accepted_at, "ip": acceptance.ip or "",
        } for acceptance in PolicyAcceptance.objects.filter(user__customer=customer)
            .select_related("policy", "user").order_by("accepted_at", "pk")],
    }


def data_export_archive(customer: Customer) -> bytes:
    """The ZIP: our own sections plus every registered app's, each as JSON and CSV."""
    from django.core.serializers.json import DjangoJSONEncoder

    sections: dict = _own_sections(customer)
    for name, exporter in personal_data.exporters().items():
        sections[name] = exporter(customer)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in sections.items():
            if isinstance(data, bytes):
                archive.writestr(name, data)
                continue
            archive.writestr(f"{name}.json", json.dumps(data, cls=DjangoJSONEncoder, ensure_ascii=False, indent=2))
            archive.writestr(f"{name}.csv", _csv_bytes(data))
        archive.writestr("README.txt", (
            f"{settings.PORTAL_NAME}: personal data of client {customer.pk}, exported {timezone.now():%Y-%m-%d %H:%M} UTC.\n"
            "Each section is given as JSON and as CSV (UTF-8). Times are in UTC.\n"))
    return buffer.getvalue()


EXPORT_MAX_ATTEMPTS = 3


def data_export_build(*, export_id: int) -> DataExport | None:
    """Build one pending export; None if it is not pending (already built, or another worker has it)."""
    from django.core.files.base import ContentFile

    with transaction.atomic():
        export = (DataExport.objects.select_for_update(skip_locked=True, of=("self",)).select_related("customer")
                  .filter(pk=export_id, status=DataExport.Status.PENDING).first())
        if export is None:
            return None
        export.attempts += 1
        try:
            with transaction.atomic():
                data = data_export_archive(export.customer)
        except Exception as error:
            logger.exception("data export %s failed", export.pk)
            export.error = repr(error)[:2000]
            if export.attempts >= EXPORT_MAX_ATTEMPTS:
                export.status = DataExport.Status.FAILED
            export.save(update_fields=["attempts", "error", "status"])
            return export
        export.file.save("export.zip", ContentFile(data), save=False)
        export.size = len(data)
        export.status = DataExport.Status.READY
        export.finished_at = timezone.now()
        export.expires_at = export.finished_at + timedelta(hours=settings.ACCOUNTS_EXPORT_LINK_HOURS)
        export.save()
        return export


def data_exports_sweep(*, now=None) -> dict:
    """Build exports nobody picked up (broker down, worker lost) and delete the files of expired ones."""
    now = now or timezone.now()
    waiting = list(DataExport.objects.filter(
        status=DataExport.Status.PENDING,
        created_at__lte=now - timedelta(seconds=settings.ACCOUNTS_EXPORT_PENDING_GRACE_SECONDS),
    ).order_by("pk").values_list("pk", flat=True))
    built = sum(1 for export_id in waiting if data_export_build(export_id=export_id) is not None)
    expired = 0
    for export in DataExport.objects.filter(status=DataExport.Status.READY, expires_at__lte=now).order_by("pk"):
        with transaction.atomic():
            locked = DataExport.objects.select_for_update(skip_locked=True).filter(
                pk=export.pk, status=DataExport.Status.READY).first()
            if locked is None:
                continue
            name = locked.file.name
            locked.status, locked.file = DataExport.Status.EXPIRED, ""
            locked.save(update_fields=["status", "file"])
            if name:
                transaction.on_commit(functools.partial(export.file.storage.delete, name))
            expired += 1
    return {"built": built, "expired": expired}
