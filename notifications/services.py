"""The one way any app tells a customer something: `notify()` inside the caller's transaction.

Mail is never sent from a request. `notify()` and `email_enqueue()` write EmailOutbox rows in the
caller's transaction and queue `email_deliver_task` after commit; if the broker is down the rows wait
and `outbox_sweep()` (Celery beat every minute, or `manage.py send_outbox` from cron) picks them up.
A notification's email row stores no body (`notification_email_rows`, shared with `bulk.notify_many`):
`email_content()` renders it from the notification when it is sent.
"""
import json
import logging
import re
from dataclasses import dataclass
from datetime import timedelta
from email.utils import formataddr

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.db.models import Case, F, Q, Value, When
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone, translation

from accounts.models import Customer
from accounts.selectors import customer_owner
from core.enqueue import enqueue_task_on_commit
from core.topbar import topbar_changed

from . import channels, selectors
from .kinds import MANDATORY_KINDS, Kind, kind_spec
from .models import EmailOutbox, NoticeBatch, Notification, NotificationPreference
from .secret_box import seal, unseal

logger = logging.getLogger(__name__)

Status = EmailOutbox.Status


# --- enqueueing -----------------------------------------------------------------------------------

def _deliver_after_commit(email_id: int) -> None:
    from .tasks import email_deliver_task

    enqueue_task_on_commit(email_deliver_task, email_id=email_id)


# --- writing notifications and emails -------------------------------------------------------------

def _absolute_url(path: str) -> str:
    return settings.PORTAL_BASE_URL + path if path else ""


def link_check(link: str) -> None:
    if link and (not link.startswith("/") or link.startswith("//")):
        raise ValueError(f"link must be a site path like '/billing/invoices/12/', got {link!r}")


def _tidy_text(text: str) -> str:
    """Template conditionals leave blank lines behind: keep at most one empty line between paragraphs."""
    # "-- " (with its space) is the standard signature separator mail clients recognise.
    lines = [line if line == "-- " else line.rstrip() for line in text.strip().splitlines()]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines))


def notice_render(*, kind: str, context: dict, link: str) -> tuple[str, str, str]:
    template_context = {**context, "portal_name": settings.PORTAL_NAME, "link_url": _absolute_url(link)}
    subject = render_to_string(f"notifications/kinds/{kind}.subject.txt", template_context)
    body_text = _tidy_text(render_to_string(f"notifications/kinds/{kind}.txt", template_context))
    body_html = render_to_string(f"notifications/kinds/{kind}.html", template_context).strip()
    return " ".join(subject.split())[:255], body_text, body_html


def email_render(*, kind: str, subject: str, body_text: str, body_html: str, link: str, owner) -> tuple[str, str]:
    context = {
        "portal_name": settings.PORTAL_NAME,
        "portal_url": settings.PORTAL_BASE_URL,
        "subject": subject,
        "body_text": body_text,
        "body_html": body_html,
        "link_url": _absolute_url(link),
        "inbox_url": _absolute_url(reverse("notifications:inbox")),
        "subscriptions_url": _absolute_url(reverse("notifications:subscriptions")),
        "mandatory": kind in MANDATORY_KINDS,
        "name": (owner.get_full_name() or owner.username) if owner else "",
    }
    return (
        _tidy_text(render_to_string("notifications/email/message.txt", context)) + "\n",
        render_to_string("notifications/email/message.html", context),
    )


def _is_dedupe_conflict(error: IntegrityError, constraint: str) -> bool:
    diag = getattr(error.__cause__, "diag", None)
    return getattr(diag, "constraint_name", None) == constraint


def notify(
    *, customer: Customer, kind: str, context: dict, link: str = "", dedupe_key: str | None = None
) -> Notification | None:
    """Store an inbox notification and its emails; deliver them after the caller's transaction commits.

    Renders the kind's templates in the customer's language. Emails go to the category's address
    unless the customer switched the kind off (mandatory kinds always). The same
    (customer, kind, dedupe_key) a second time creates nothing and returns None.
    """
    kind_spec(kind)  # unknown kind: ValueError, a programming error in the caller
    kind = Kind(kind).value
    link_check(link)
    context = dict(context or {})
    json.dumps(context)  # TypeError now, in the caller's code, rather than a ValidationError later
    with transaction.atomic():
        if dedupe_key is not None and Notification.objects.filter(
            customer=customer, kind=kind, dedupe_key=dedupe_key
        ).exists():
            return None
        owner = customer_owner(customer=customer)
        with translation.override(customer.language):
            subject, body_text, body_html = notice_render(kind=kind, context=context, link=link)
            notification = Notification(
                customer=customer, kind=kind, subject=subject, body_text=body_text, body_html=body_html,
                link=link, context=context, dedupe_key=dedupe_key, language=translation.get_language(),
            )
            notification.full_clean(validate_unique=False, validate_constraints=False)
            try:
                with transaction.atomic():  # savepoint: a concurrent twin loses here, not the caller
                    notification.save()
            except IntegrityError as error:
                if _is_dedupe_conflict(error, "notification_dedupe_unique"):
                    return None
                raise
            topbar_changed([customer.pk])  # the unread count
            channels.dispatch(notification)
        if not selectors.email_enabled(customer=customer, kind=kind):
            return notification
        recipients = selectors.email_recipients(customer=customer, kind=kind, context=context, owner=owner)
        for row in notification_email_rows(notification_id=notification.pk, customer_id=customer.pk, kind=kind,
                                           subject=notification.subject, created_at=notification.created_at,
                                           recipients=recipients):
            email = EmailOutbox.objects.create(**row)
            _deliver_after_commit(email.pk)
    return notification


def notification_email_rows(*, notification_id: int, customer_id: int, kind: str, subject: str, created_at,
                            recipients: list[str]) -> list[dict]:
    """The EmailOutbox rows (by attname) of a stored notification, one per recipient
    (`selectors.email_recipients`): the one shape `notify()` and `bulk.notify_many` write (plain values:
    the batch path builds no model instance per notice). No body: `email_content()` renders it from the
    notification when it is sent, so the inbox and the mail never disagree and erasure blanks both."""
    return [
        {"notification_id": notification_id, "customer_id": customer_id, "kind": kind, "recipient": recipient,
         "subject": subject, "body_text": "", "body_html": "", "next_attempt_at": created_at, "created_at": created_at}
        for recipient in recipients
    ]


def email_enqueue(
    *, to: str, subject: str, body_text: str, body_html: str = "", dedupe_key: str | None = None,
    customer: Customer | None = None, contains_secret: bool = False,
) -> EmailOutbox | None:
    """Queue an email that belongs to no customer's inbox (e.g. staff department mail).

    `customer`: whose personal data the mail carries (a login link, their ticket message), so account
    erasure finds it. `contains_secret`: the text holds a sign-in link — hidden in admin, blanked once
    sent. The same `dedupe_key` twice queues it once (returns None the second time).
    """
    to = to.strip()
    validate_email(to)
    with transaction.atomic():
        if dedupe_key is not None and EmailOutbox.objects.filter(dedupe_key=dedupe_key).exists():
            return None
        email = EmailOutbox(
            customer=customer, recipient=to, subject=" ".join(subject.split())[:255], body_text=body_text,
            body_html=body_html, dedupe_key=dedupe_key, contains_secret=contains_secret,
        )
        email.full_clean(validate_unique=False, validate_constraints=False)
        if contains_secret:  # stored encrypted: staff never read (or filter on) the link
            email.body_text, email.body_html = seal(body_text), seal(body_html)
        try:
            with transaction.atomic():
                email.save()
        except IntegrityError as error:
            if _is_dedupe_conflict(error, "outbox_dedupe_unique"):
                return None
            raise
        _deliver_after_commit(email.pk)
    return email


# --- outbox rows (EmailOutbox and telegram's TelegramOutbox share their status columns) -------------

@dataclass(frozen=True)
class DeliveryResult:
    outcome: str  # "sent", "retry", "failed" or "skipped" (not ours to send: claimed, sent, not due)
    retry_in: int | None = None


def outbox_claim(model, pk: int) -> bool:
    """Move one due row pending → sending in a single committed UPDATE: of two racing workers exactly
    one gets True and sends it."""
    now = timezone.now()
    with transaction.atomic():
        return bool(model.objects.filter(pk=pk, status=Status.PENDING, next_attempt_at__lte=now).update(
            status=Status.SENDING, claimed_at=now, attempts=F("attempts") + 1
        ))


def outbox_mark_sent(model, pk: int, **fields) -> None:
    model.objects.filter(pk=pk, status=Status.SENDING).update(
        status=Status.SENT, sent_at=timezone.now(), claimed_at=None, last_error="", **fields
    )


def outbox_mark_failed(model, pk: int, *, error: str) -> None:
    model.objects.filter(pk=pk, status=Status.SENDING).update(status=Status.FAILED, claimed_at=None, last_error=error)


def outbox_back_off(model, pk: int, *, error: str, delay: int) -> DeliveryResult:
    model.objects.filter(pk=pk, status=Status.SENDING).update(
        status=Status.PENDING, claimed_at=None, last_error=error,
        next_attempt_at=timezone.now() + timedelta(seconds=delay),
    )
    return DeliveryResult("retry", retry_in=delay)


def outbox_sweep_rows(model, *, max_attempts: int) -> list[int]:
    """Recover rows whose delivery was lost and return the ids due for sending.

    A row stuck in "sending" longer than NOTIFICATIONS_OUTBOX_STUCK_SECONDS lost its worker (killed
    mid-send); it goes back to pending (or to failed when out of attempts). Pending rows due for
    longer than the grace period were never picked up (broker down when they were queued).
    """
    now = timezone.now()
    stuck_before = now - timedelta(seconds=settings.NOTIFICATIONS_OUTBOX_STUCK_SECONDS)
    with transaction.atomic():
        stuck = model.objects.filter(status=Status.SENDING, claimed_at__lt=stuck_before)
        stuck.filter(attempts__gte=max_attempts).update(
            status=Status.FAILED, claimed_at=None, last_error="Worker lost while sending; out of attempts."
        )
        # next_attempt_at = claimed_at makes the row due at once (it is older than the grace period).
        stuck.update(status=Status.PENDING, next_attempt_at=F("claimed_at"), claimed_at=None,
                     last_error="Worker lost while sending; retrying.")
    # A fresh row gets a grace period (its on_commit task is probably on the way); a retry after a
    # failed attempt is the sweeper's job alone, so it goes as soon as its backoff has passed.
    due_before = now - timedelta(seconds=settings.NOTIFICATIONS_OUTBOX_PENDING_GRACE_SECONDS)
    return list(
        model.objects.filter(status=Status.PENDING)
        .filter(Q(attempts=0, next_attempt_at__lte=due_before) | Q(attempts__gt=0, next_attempt_at__lte=now))
        .order_by("next_attempt_at", "pk")
        .values_list("pk", flat=True)[: settings.NOTIFICATIONS_OUTBOX_SWEEP_BATCH]
    )


def outbox_reset_failed(model, ids: list[int]) -> list[int]:
    """Staff retry (inside the caller's transaction): failed rows among `ids` get fresh attempts, due now."""
    failed = list(model.objects.select_for_update().filter(pk__in=ids, status=Status.FAILED).values_list("pk", flat=True))
    model.objects.filter(pk__in=failed).update(status=Status.PENDING, attempts=0, next_attempt_at=timezone.now())
    return failed


# --- delivery -------------------------------------------------------------------------------------

def retry_delay_seconds(attempts: int) -> int:
    """Exponential backoff after the n-th failed attempt: base, 2×base, 4×base … capped."""
    base = settings.NOTIFICATIONS_EMAIL_RETRY_BASE_SECONDS
    return min(base * 2 ** max(attempts - 1, 0), settings.NOTIFICATIONS_EMAIL_RETRY_MAX_SECONDS)


class NothingToSend(Exception):
    """The row's content is gone: erased with the customer's data, or its notification deleted."""


ERASED_REASON = "Not sent: the message was erased with the customer's data, or its notification deleted."


def email_content(email: EmailOutbox) -> tuple[str, str, str]:
    """(subject, text, HTML) of an outbox row as it is sent (also what staff see in admin).

    A notification's row carries no body: it is rendered now from the notification, in the language the
    notification was written in. `email_enqueue`'s mail (and rows written before notifications stopped storing bodies)
    carries its own, sealed when it holds a sign-in link. NothingToSend when the body is gone.
    """
    if email.body_text:
        if email.contains_secret:
            return email.subject, unseal(email.body_text), unseal(email.body_html)
        return email.subject, email.body_text, email.body_html
    notification = (Notification.objects.select_related("customer").filter(pk=email.notification_id).first()
                    if email.notification_id else None)
    if notification is None or not notification.body_text:  # a stored notification always has a body
        raise NothingToSend(ERASED_REASON)
    customer = notification.customer
    with translation.override(notification.language):
        body_text, body_html = email_render(
            kind=notification.kind, subject=notification.subject, body_text=notification.body_text,
            body_html=notification.body_html, link=notification.link, owner=customer_owner(customer=customer),
        )
    return email.subject, body_text, body_html


def _build_message(email: EmailOutbox) -> EmailMultiAlternatives:
    subject, body_text, body_html = email_content(email)
    message = EmailMultiAlternatives(
        subject=subject,
        body=body_text,
        from_email=formataddr((settings.PORTAL_NAME, settings.DEFAULT_FROM_EMAIL)),
        to=[email.recipient],
        headers={"Auto-Submitted": "auto-generated", "X-Portal-Outbox-Id": str(email.pk)},
    )
    if body_html:
        message.attach_alternative(body_html, "text/html")
    return message


def email_deliver(*, email_id: int) -> DeliveryResult:
    """Send one outbox row unless another worker has it or it is already sent.

    The claim is a single UPDATE … WHERE status='pending' (committed before sending), so of two
    workers racing for the row exactly one gets it. Failures keep the error and back off.
    """
    if not outbox_claim(EmailOutbox, email_id):
        return DeliveryResult("skipped")
    email = EmailOutbox.objects.get(pk=email_id)
    try:
        _build_message(email).send(fail_silently=False)
    except NothingToSend as gone:  # never an empty mail; no retry would bring the text back
        outbox_mark_failed(EmailOutbox, email_id, error=str(gone))
        return DeliveryResult("failed")
    except Exception as error:  # SMTP, DNS, socket: all mean "try again later"
        return _record_failure(email, error)
    forget_secret = {"body_text": "", "body_html": ""} if email.contains_secret else {}
    outbox_mark_sent(EmailOutbox, email_id, **forget_secret)
    return DeliveryResult("sent")


def _record_failure(email: EmailOutbox, error: Exception) -> DeliveryResult:
    message = f"{type(error).__name__}: {error}"[:2000]
    logger.warning("Email %s to %s failed (attempt %s): %s", email.pk, email.recipient, email.attempts, message)
    if email.attempts >= settings.NOTIFICATIONS_EMAIL_MAX_ATTEMPTS:
        outbox_mark_failed(EmailOutbox, email.pk, error=message)
        return DeliveryResult("failed")
    return outbox_back_off(EmailOutbox, email.pk, error=message, delay=retry_delay_seconds(email.attempts))


def outbox_sweep() -> list[int]:
    """Recover lost email deliveries and return the ids due for sending (see `outbox_sweep_rows`)."""
    return outbox_sweep_rows(EmailOutbox, max_attempts=settings.NOTIFICATIONS_EMAIL_MAX_ATTEMPTS)


@transaction.atomic
def email_retry(*, email_ids: list[int]) -> int:
    """Staff: give failed emails a fresh set of attempts and queue them now."""
    ids = outbox_reset_failed(EmailOutbox, email_ids)
    for email_id in ids:
        _deliver_after_commit(email_id)
    return len(ids)


@transaction.atomic
def customer_notifications_erase(*, customer: Customer) -> None:
    """Account erasure: blank every inbox notification and email about the customer.

    The rows stay as a record that something of a kind was sent when (kind, status, timestamps), with
    no subject, text, address or error (errors quote the address). Mail not sent yet never will be:
    it becomes failed with the reason (a worker that claimed it already, or a staff retry, finds
    nothing to send: `email_content`).
    """
    Notification.objects.filter(customer=customer).update(
        subject="", body_text="", body_html="", link="", context={}
    )
    emails = EmailOutbox.objects.filter(customer=customer)
    emails.filter(status__in=[Status.PENDING, Status.SENDING]).update(
        status=Status.FAILED, claimed_at=None, last_error=ERASED_REASON
    )
    # Other errors quote the address; the reason survives a second erasure.
    keep_reason = Case(When(last_error=ERASED_REASON, then=Value(ERASED_REASON)), default=Value(""))
    emails.update(recipient="", subject="", body_text="", body_html="", last_error=keep_reason)
    # Notices not stored yet (a batch job's, delivered right after its commit) never will be.
    for batch in NoticeBatch.objects.select_for_update().filter(notices__contains=[{"customer_id": customer.pk}]):
        batch.notices = [notice for notice in batch.notices if notice["customer_id"] != customer.pk]
        batch.save(update_fields=["notices"])


# --- inbox and preferences ------------------------------------------------------------------------

@transaction.atomic
def notification_mark_read(*, customer: Customer, user, notification_id: int) -> Notification:
    notification = selectors.notification_get(customer=customer, user=user, notification_id=notification_id)
    if notification.read_at is None:
        Notification.objects.filter(pk=notification.pk, read_at__isnull=True).update(read_at=timezone.now())
        notification.refresh_from_db(fields=["read_at"])
        topbar_changed([customer.pk])
    return notification


@transaction.atomic
def notification_mark_all_read(*, customer: Customer, user) -> int:
    """Marks what `user` sees; notifications outside the user's role stay unread for the others."""
    marked = Notification.objects.filter(customer=customer, kind__in=selectors.kinds_visible_to(user),
                                         read_at__isnull=True).update(read_at=timezone.now())
    topbar_changed([customer.pk])
    return marked


@transaction.atomic
def preferences_update(*, customer: Customer, email_enabled: dict[str, bool]) -> None:
    """Store per-kind email choices. Mandatory kinds are ignored; the newsletter is Customer.newsletter."""
    for kind, enabled in email_enabled.items():
        kind_spec(kind)
        if kind in MANDATORY_KINDS:
            continue
        if kind == Kind.NEWSLETTER:
            Customer.objects.filter(pk=customer.pk).update(newsletter=bool(enabled))
            customer.newsletter = bool(enabled)
            continue
        NotificationPreference.objects.update_or_create(
            customer=customer, kind=kind, defaults={"email_enabled": bool(enabled)}
        )

