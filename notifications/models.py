from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from accounts.models import Customer
from core.choices import ChoiceLabels

from .kinds import Kind


class Notification(ChoiceLabels, models.Model):
    """One message in a customer's inbox; its emails are EmailOutbox rows."""

    customer = models.ForeignKey(  # indexed as the lead of notification_inbox_idx
        Customer, on_delete=models.CASCADE, related_name="notifications", verbose_name=_("customer"), db_index=False
    )
    kind = models.CharField(_("kind"), max_length=40, choices=Kind.choices)
    subject = models.CharField(_("subject"), max_length=255)
    body_text = models.TextField(_("text"))
    body_html = models.TextField(_("HTML"))
    link = models.CharField(_("link"), max_length=500, blank=True)
    context = models.JSONField(_("context"), default=dict, blank=True)
    # The language the texts were rendered in: its emails are framed in it when sent later, whatever
    # the customer's language is by then.
    language = models.CharField(_("language"), max_length=8, choices=settings.LANGUAGES, default=settings.LANGUAGE_CODE)
    # Callers make "once per period" notices idempotent with it, e.g. "order:42:period:3:7d".
    dedupe_key = models.CharField(_("deduplication key"), max_length=200, null=True, blank=True)
    read_at = models.DateTimeField(_("read at"), null=True, blank=True)
    created_at = models.DateTimeField(_("created at"), default=timezone.now, db_index=True)

    class Meta:
        verbose_name = _("notification")
        verbose_name_plural = _("notifications")
        ordering = ["-created_at", "-pk"]
        indexes = [
            models.Index(fields=["customer", "-created_at", "-id"], name="notification_inbox_idx"),
            models.Index(fields=["customer"], condition=models.Q(read_at__isnull=True), name="notification_unread_idx"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["customer", "kind", "dedupe_key"],
                condition=models.Q(dedupe_key__isnull=False),
                name="notification_dedupe_unique",
            ),
        ]

    def __str__(self) -> str:
        return self.subject

    @property
    def is_unread(self) -> bool:
        return self.read_at is None


class NoticeBatch(models.Model):
    """Notices of one kind written in the transaction of what they announce and stored as notifications
    right after it commits (`deferred.notices_defer`, `deferred.notice_batches_deliver`): a batch job's
    transaction (auto-renewal holds the invoice-number counter until COMMIT) then neither renders nor
    inserts them. Written first, so a worker dying after its commit delays them; the sweeper delivers."""

    kind = models.CharField(_("kind"), max_length=40, choices=Kind.choices)
    # [{"customer_id", "context", "link", "dedupe_key"}, ...]
    notices = models.JSONField(_("notices"))
    created_at = models.DateTimeField(_("created at"), default=timezone.now)
    # Failed deliveries; at deferred.MAX_ATTEMPTS the batch waits for staff (admin: retry).
    attempts = models.PositiveSmallIntegerField(_("attempts"), default=0)
    last_error = models.TextField(_("last error"), blank=True)

    class Meta:
        verbose_name = _("pending notice batch")
        verbose_name_plural = _("pending notice batches")

    def __str__(self) -> str:
        return f"{self.kind} x{len(self.notices)}"


class OutboxMessage(models.Model):
    """A message written in the same transaction as its cause and sent later, exactly once: an email
    (`EmailOutbox`) or a bot message (`telegram.TelegramOutbox`).

    Workers claim a row by moving it pending → sending in one UPDATE, so two workers never send it
    twice; the sweeper puts rows back to pending when a worker died mid-send. A subclass lists
    `due_index(name)` and `sent_has_sent_at(name)` in its Meta under the names its table was built with.
    """

    class Status(models.TextChoices):
        PENDING = "pending", _("Pending")
        SENDING = "sending", _("Sending")
        SENT = "sent", _("Sent")
        FAILED = "failed", _("Failed")

    customer = models.ForeignKey(
        Customer, on_delete=models.CASCADE, null=True, blank=True, related_name="+", verbose_name=_("customer")
    )
    status = models.CharField(_("status"), max_length=10, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveSmallIntegerField(_("attempts"), default=0)
    last_error = models.TextField(_("last error"), blank=True)
    next_attempt_at = models.DateTimeField(_("next attempt at"), default=timezone.now)
    claimed_at = models.DateTimeField(_("sending since"), null=True, blank=True)
    sent_at = models.DateTimeField(_("sent at"), null=True, blank=True)
    created_at = models.DateTimeField(_("created at"), default=timezone.now, db_index=True)

    class Meta:
        abstract = True
        ordering = ["-created_at", "-pk"]

    @staticmethod
    def due_index(name: str) -> models.Index:
        """The unfinished rows by when they are due: what workers and the sweeper read."""
        return models.Index(fields=["status", "next_attempt_at"], condition=models.Q(status__in=["pending", "sending"]),
                            name=name)

    @staticmethod
    def sent_has_sent_at(name: str) -> models.CheckConstraint:
        return models.CheckConstraint(condition=models.Q(status="sent", sent_at__isnull=False) | ~models.Q(status="sent"),
                                      name=name)


class EmailOutbox(OutboxMessage):
    """An email to send (see `OutboxMessage`)."""

    notification = models.ForeignKey(
        Notification, on_delete=models.SET_NULL, null=True, blank=True, related_name="emails",
        verbose_name=_("notification"),
    )
    kind = models.CharField(_("kind"), max_length=40, choices=Kind.choices, blank=True)
    recipient = models.EmailField(_("recipient"))
    subject = models.CharField(_("subject"), max_length=255)
    body_text = models.TextField(_("text"))
    body_html = models.TextField(_("HTML"), blank=True)
    dedupe_key = models.CharField(_("deduplication key"), max_length=200, null=True, blank=True)
    # A sign-in link (email verification, invitation, password reset) works for whoever reads it: staff
    # don't see the text in admin, and it is blanked once sent.
    contains_secret = models.BooleanField(_("contains a sign-in link"), default=False)

    class Meta(OutboxMessage.Meta):
        verbose_name = _("outgoing email")
        verbose_name_plural = _("email outbox")
        indexes = [OutboxMessage.due_index("outbox_due_idx")]
        constraints = [
            models.UniqueConstraint(
                fields=["dedupe_key"], condition=models.Q(dedupe_key__isnull=False), name="outbox_dedupe_unique"
            ),
            OutboxMessage.sent_has_sent_at("outbox_sent_has_sent_at"),
        ]

    def __str__(self) -> str:
        return f"{self.recipient}: {self.subject}"


class NotificationPreference(models.Model):
    """A customer's choice for one kind; no row means the default (on; opt-in kinds off)."""

    customer = models.ForeignKey(
        Customer, on_delete=models.CASCADE, related_name="notification_preferences", verbose_name=_("customer")
    )
    kind = models.CharField(_("kind"), max_length=40, choices=Kind.choices)
    email_enabled = models.BooleanField(_("send by email"), default=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("notification preference")
        verbose_name_plural = _("notification preferences")
        constraints = [
            models.UniqueConstraint(fields=["customer", "kind"], name="notification_preference_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.customer_id} {self.kind}: {'on' if self.email_enabled else 'off'}"
