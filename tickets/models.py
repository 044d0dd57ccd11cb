import uuid
from pathlib import Path

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _, pgettext, pgettext_lazy

from accounts.models import private_storage as accounts_private_storage
from core.choices import ChoiceLabels

# Names of the departments created by migration 0002, marked so they reach the catalogue (with a
# context of their own) and show translated; names staff add later show as typed.
DEFAULT_DEPARTMENT_NAMES = (
    pgettext_lazy("department", "Technical support"),
    pgettext_lazy("department", "Billing"),
    pgettext_lazy("department", "Abuse"),
)


# One private storage for the project (accounts owns it); the name stays here for migration 0001.
private_storage = accounts_private_storage


def attachment_path(instance: "Attachment", filename: str) -> str:
    # The customer's file name never touches the disk: a random name keeps the stored path safe.
    suffix = Path(instance.original_name or filename).suffix.lower()[:10]
    return f"tickets/{instance.created_at:%Y/%m}/{uuid.uuid4().hex}{suffix}"


class Department(models.Model):
    class Category(models.TextChoices):
        SUPPORT = "support", _("Technical support")
        BILLING = "billing", _("Billing")
        ABUSE = "abuse", _("Abuse")

    name = models.CharField(_("name"), max_length=100)
    slug = models.SlugField(_("slug"), unique=True)
    category = models.CharField(
        _("category"), max_length=16, choices=Category.choices, default=Category.SUPPORT,
        help_text=_("Decides which of the customer's addresses receives replies (support, billing or abuse)."),
    )
    email = models.EmailField(_("staff email"), help_text=_("New customer messages are emailed here."))
    is_active = models.BooleanField(_("active"), default=True)
    position = models.PositiveSmallIntegerField(_("position"), default=0)

    class Meta:
        verbose_name = _("department")
        verbose_name_plural = _("departments")
        ordering = ["position", "name"]

    def __str__(self) -> str:
        return self.display_name

    @property
    def display_name(self) -> str:
        return pgettext("department", self.name)


class Ticket(ChoiceLabels, models.Model):
    class Priority(models.TextChoices):
        LOW = "low", _("Low")
        NORMAL = "normal", _("Normal")
        HIGH = "high", _("High")
        URGENT = "urgent", _("Urgent")

    class Status(models.TextChoices):
        OPEN = "open", _("Open")
        ANSWERED = "answered", _("Answered")
        CUSTOMER_REPLIED = "customer_replied", _("Customer replied")
        CLOSED = "closed", _("Closed")

    AWAITING_STAFF = (Status.OPEN, Status.CUSTOMER_REPLIED)

    customer = models.ForeignKey(
        "accounts.Customer", on_delete=models.PROTECT, related_name="tickets", verbose_name=_("customer")
    )
    subject = models.CharField(_("subject"), max_length=200)
    department = models.ForeignKey(
        Department, on_delete=models.PROTECT, related_name="tickets", verbose_name=_("department")
    )
    priority = models.CharField(_("priority"), max_length=8, choices=Priority.choices, default=Priority.NORMAL)
    status = models.CharField(_("status"), max_length=16, choices=Status.choices, default=Status.OPEN)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+",
        verbose_name=_("created by"),
    )
    assigned_to = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="assigned_tickets",
        limit_choices_to={"is_staff": True}, verbose_name=_("assigned to"),
    )
    # Denormalised from the newest public message so the list needs no per-row queries.
    last_reply_at = models.DateTimeField(_("last reply"), db_index=True)
    last_reply_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+",
        verbose_name=_("last reply by"),
    )
    last_reply_is_staff = models.BooleanField(default=False)
    status_changed_at = models.DateTimeField(_("status changed"))
    # Oldest customer message staff have not answered yet; drives the admin "waiting" column.
    awaiting_staff_since = models.DateTimeField(_("awaiting staff since"), null=True, blank=True)
    customer_unread = models.BooleanField(_("unread by customer"), default=False)
    autoclose_warned_at = models.DateTimeField(_("auto-close warning sent"), null=True, blank=True)
    closed_at = models.DateTimeField(_("closed"), null=True, blank=True)
    related_order = models.ForeignKey(
        "orders.Order", on_delete=models.SET_NULL, null=True, blank=True, related_name="tickets",
        verbose_name=_("related service"),
    )

    class Meta:
        verbose_name = _("ticket")
        verbose_name_plural = _("tickets")
        ordering = ["-last_reply_at", "-pk"]
        indexes = [
            models.Index(fields=["customer", "-last_reply_at"], name="ticket_customer_recent_idx"),
            models.Index(fields=["status", "status_changed_at"], name="ticket_status_changed_idx"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=(models.Q(status="closed", closed_at__isnull=False)
                           | (~models.Q(status="closed") & models.Q(closed_at__isnull=True))),
                name="ticket_closed_at_iff_closed",
            ),
        ]

    def __str__(self) -> str:
        return f"#{self.number} {self.subject}"

    @property
    def number(self) -> int:
        """The number customers quote; the primary key, whose sequence starts at 10001 (migration 0002)."""
        return self.pk

    @property
    def is_closed(self) -> bool:
        return self.status == self.Status.CLOSED


class Message(models.Model):
    ticket = models.ForeignKey(Ticket, on_delete=models.PROTECT, related_name="messages", verbose_name=_("ticket"))
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+",
        verbose_name=_("author"),
    )
    is_staff = models.BooleanField(_("staff message"), default=False)
    is_internal = models.BooleanField(
        _("internal note"), default=False, help_text=_("Visible to staff only; the customer never sees it.")
    )
    body = models.TextField(_("message"))
    created_at = models.DateTimeField(_("created"), auto_now_add=True)

    class Meta:
        verbose_name = _("message")
        verbose_name_plural = _("messages")
        ordering = ["created_at", "pk"]
        indexes = [models.Index(fields=["ticket", "created_at"], name="message_ticket_created_idx")]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(is_internal=False) | models.Q(is_staff=True), name="message_internal_only_staff"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.ticket_id}/{self.pk}"


class Attachment(models.Model):
    message = models.ForeignKey(
        Message, on_delete=models.PROTECT, related_name="attachments", verbose_name=_("message")
    )
    file = models.FileField(_("file"), storage=private_storage, upload_to=attachment_path, max_length=200)
    original_name = models.CharField(_("file name"), max_length=150)
    content_type = models.CharField(_("content type"), max_length=64)
    size = models.PositiveIntegerField(_("size"))
    created_at = models.DateTimeField(_("uploaded"), default=timezone.now)  # set before upload_to runs

    class Meta:
        verbose_name = _("attachment")
        verbose_name_plural = _("attachments")
        ordering = ["pk"]

    def __str__(self) -> str:
        return self.original_name
