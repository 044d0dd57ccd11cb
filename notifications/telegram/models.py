from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from accounts.models import Customer
from notifications.kinds import Kind
from notifications.models import Notification, OutboxMessage


class TelegramLinkToken(models.Model):
    """A one-time "Link Telegram" deep-link token; only its SHA-256 is stored."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="telegram_link_tokens", verbose_name=_("user")
    )
    token_hash = models.CharField(_("token hash"), max_length=64, unique=True)
    expires_at = models.DateTimeField(_("expires at"))
    used_at = models.DateTimeField(_("used at"), null=True, blank=True)
    created_at = models.DateTimeField(_("created at"), default=timezone.now)

    class Meta:
        verbose_name = _("Telegram link token")
        verbose_name_plural = _("Telegram link tokens")

    def __str__(self) -> str:
        return f"{self.user_id} until {self.expires_at:%Y-%m-%d %H:%M}"


class TelegramLink(models.Model):
    """A portal user's Telegram chat: one chat per user and one user per chat."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="telegram_link", verbose_name=_("user")
    )
    customer = models.ForeignKey(
        Customer, on_delete=models.CASCADE, related_name="telegram_links", verbose_name=_("customer")
    )
    chat_id = models.BigIntegerField(_("chat ID"), unique=True)
    telegram_username = models.CharField(_("Telegram username"), max_length=64, blank=True)
    telegram_name = models.CharField(_("Telegram name"), max_length=255, blank=True)
    # Notification kinds this user also receives in Telegram.
    kinds = ArrayField(models.CharField(max_length=40, choices=Kind.choices), default=list, blank=True,
                       verbose_name=_("notification kinds"))
    linked_at = models.DateTimeField(_("linked at"), default=timezone.now)

    class Meta:
        verbose_name = _("Telegram link")
        verbose_name_plural = _("Telegram links")

    def __str__(self) -> str:
        return f"{self.user} ↔ {self.chat_id}"


class TelegramOutbox(OutboxMessage):
    """A bot message to send (see `notifications.models.OutboxMessage`).

    `message_id` (Telegram's, unique per chat) and `reference` (e.g. "ticket:10001") map a customer's
    reply in Telegram back to what the message was about.
    """

    notification = models.ForeignKey(
        Notification, on_delete=models.SET_NULL, null=True, blank=True, related_name="telegram_messages",
        verbose_name=_("notification"),
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+",
        verbose_name=_("user"),
    )
    chat_id = models.BigIntegerField(_("chat ID"))
    text = models.TextField(_("text"))
    reference = models.CharField(_("reference"), max_length=100, blank=True)
    reply_to_message_id = models.BigIntegerField(_("in reply to"), null=True, blank=True)
    message_id = models.BigIntegerField(_("Telegram message ID"), null=True, blank=True)

    class Meta(OutboxMessage.Meta):
        verbose_name = _("Telegram message")
        verbose_name_plural = _("Telegram outbox")
        indexes = [OutboxMessage.due_index("telegram_outbox_due_idx")]
        constraints = [
            models.UniqueConstraint(
                fields=["notification", "chat_id"], condition=models.Q(notification__isnull=False),
                name="telegram_outbox_notification_chat_unique",
            ),
            models.UniqueConstraint(
                fields=["chat_id", "message_id"], condition=models.Q(message_id__isnull=False),
                name="telegram_outbox_chat_message_unique",
            ),
            OutboxMessage.sent_has_sent_at("telegram_outbox_sent_has_sent_at"),
        ]

    def __str__(self) -> str:
        return f"{self.chat_id}: {self.text[:40]}"


class TelegramUpdate(models.Model):
    """Every update the bot webhook accepted; the unique update_id makes Telegram's redeliveries no-ops."""

    update_id = models.BigIntegerField(_("update ID"), unique=True)
    chat_id = models.BigIntegerField(_("chat ID"), null=True, blank=True)
    payload = models.JSONField(_("payload"))
    outcome = models.CharField(_("outcome"), max_length=40, blank=True)
    received_at = models.DateTimeField(_("received at"), default=timezone.now, db_index=True)

    class Meta:
        verbose_name = _("Telegram update")
        verbose_name_plural = _("Telegram updates")
        ordering = ["-received_at", "-pk"]

    def __str__(self) -> str:
        return f"{self.update_id} ({self.outcome})"
