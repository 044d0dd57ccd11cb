"""Telegram: linking a chat, the bot's outbox and the webhook's updates.

Like email, a bot message is a TelegramOutbox row written in the caller's transaction and sent by a
Celery task after commit; `telegram_outbox_sweep()` (beat every minute, or
`manage.py send_telegram_outbox`) recovers rows the broker or a worker lost.
"""
import hashlib
import logging
import secrets
from datetime import datetime, timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.text import Truncator
from django.utils.translation import gettext as _

from accounts.models import Customer, User
from accounts.services.activity import activity_record
from core.enqueue import enqueue_task_on_commit
from notifications.models import Notification
from notifications.services import (
    DeliveryResult,
    outbox_back_off,
    outbox_claim,
    outbox_mark_failed,
    outbox_mark_sent,
    outbox_reset_failed,
    outbox_sweep_rows,
    retry_delay_seconds,
)

from . import bot_api, selectors
from .models import TelegramLink, TelegramLinkToken, TelegramOutbox, TelegramUpdate
from .replies import TelegramMessage, handle_reply

logger = logging.getLogger(__name__)

Status = TelegramOutbox.Status
MESSAGE_MAX_CHARS = 4096  # Bot API limit for sendMessage text


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


# --- linking --------------------------------------------------------------------------------------

@transaction.atomic
def link_token_create(*, user: User) -> tuple[str, datetime]:
    """A fresh one-time token for the deep link; earlier unused tokens of the user stop working."""
    TelegramLinkToken.objects.filter(user=user, used_at__isnull=True).delete()
    token = secrets.token_urlsafe(24)  # 32 chars of [A-Za-z0-9_-], what /start parameters allow
    expires_at = timezone.now() + timedelta(seconds=settings.TELEGRAM_LINK_TOKEN_TTL)
    TelegramLinkToken.objects.create(user=user, token_hash=_token_hash(token), expires_at=expires_at)
    return token, expires_at


@transaction.atomic
def link_confirm(*, token: str, chat_id: int, telegram_username: str = "", telegram_name: str = "") -> TelegramLink | None:
    """`/start <token>` from a chat: link it to the token's user. None if the token is unknown, used or expired."""
    now = timezone.now()
    row = (
        TelegramLinkToken.objects.select_for_update(of=("self",)).select_related("user__customer")
        .filter(token_hash=_token_hash(token)).first()
    )
    if row is None or row.used_at is not None or row.expires_at <= now:
        return None
    row.used_at = now
    row.save(update_fields=["used_at"])
    user = row.user
    if not user.is_active or user.customer_id is None:
        return None
    # The chat proved control of this portal login with the token: it leaves any other user it had.
    TelegramLink.objects.filter(chat_id=chat_id).exclude(user=user).delete()
    link, _created = TelegramLink.objects.update_or_create(
        user=user,
        defaults={"customer": user.customer, "chat_id": chat_id, "telegram_username": telegram_username[:64],
                  "telegram_name": telegram_name[:255], "linked_at": now},
        create_defaults={"customer": user.customer, "chat_id": chat_id, "telegram_username": telegram_username[:64],
                         "telegram_name": telegram_name[:255], "linked_at": now,
                         "kinds": [k for k in selectors.kinds_available(user) if k in selectors.DEFAULT_KINDS]},
    )
    activity_record(action="telegram_linked", customer=user.customer, actor=user,
                    details={"telegram": telegram_username or telegram_name})
    return link


@transaction.atomic
def link_delete(*, user: User) -> bool:
    link = TelegramLink.objects.select_for_update().filter(user=user).first()
    if link is None:
        return False
    link.delete()
    activity_record(action="telegram_unlinked", customer=user.customer, actor=user,
                    details={"telegram": link.telegram_username or link.telegram_name})
    return True


@transaction.atomic
def link_drop_forbidden(*, chat_id: int) -> None:
    """Telegram refuses to deliver to this chat any more (403): unlink it; the customer may link again."""
    link = TelegramLink.objects.select_for_update(of=("self",)).select_related("user").filter(chat_id=chat_id).first()
    if link is not None:
        link.delete()
        activity_record(action="telegram_unlinked", customer=link.customer, actor=None,
                        details={"telegram": link.telegram_username or link.telegram_name, "reason": "bot_blocked"})


@transaction.atomic
def link_kinds_update(*, user: User, kinds: list[str]) -> TelegramLink:
    """Store the kinds sent to Telegram; kinds the user does not receive are dropped."""
    link = TelegramLink.objects.select_for_update().get(user=user)
    available = selectors.kinds_available(user)
    link.kinds = [kind for kind in available if kind in set(kinds)]
    link.save(update_fields=["kinds"])
    return link


# --- outbox ---------------------------------------------------------------------------------------

def _deliver_after_commit(outbox_id: int) -> None:
    from .tasks import telegram_deliver_task

    enqueue_task_on_commit(telegram_deliver_task, outbox_id=outbox_id)


def bot_message_enqueue(
    *, chat_id: int, text: str, customer=None, user=None, reference: str = "", notification=None,
    reply_to_message_id: int | None = None,
) -> TelegramOutbox:
    with transaction.atomic():
        row = TelegramOutbox.objects.create(
            chat_id=chat_id, text=Truncator(text).chars(MESSAGE_MAX_CHARS), customer=customer, user=user,
            reference=reference, notification=notification, reply_to_message_id=reply_to_message_id,
        )
        _deliver_after_commit(row.pk)
    return row


def reference_for(notification: Notification) -> str:
    """What a reply to this notification answers: tickets pass `ticket_id` in the context."""
    ticket_id = (notification.context or {}).get("ticket_id")
    return f"ticket:{ticket_id}" if ticket_id else ""


def _notification_text(notification: Notification, reference: str) -> str:
    footer = []
    if notification.link:
        footer.append(settings.PORTAL_BASE_URL + notification.link)
    if reference:
        footer.append("↩️ " + _("Reply to this message to answer in the ticket."))
    footer_text = "\n\n".join(footer)
    room = MESSAGE_MAX_CHARS - len(notification.subject) - len(footer_text) - 6
    return "\n\n".join(part for part in (
        notification.subject, Truncator(notification.body_text).chars(room), footer_text
    ) if part)


def notification_to_telegram(notification: Notification) -> None:
    """notifications channel: one outbox row per linked chat that chose this kind (inside notify()'s transaction)."""
    if not selectors.telegram_enabled():
        return
    links = TelegramLink.objects.filter(
        customer_id=notification.customer_id, kinds__contains=[notification.kind], user__is_active=True
    ).select_related("user__customer", "customer")
    reference = reference_for(notification)
    for link in links:
        if notification.kind not in selectors.kinds_available(link.user):
            continue  # the user's role changed since they chose it
        with translation.override(notification.language):  # the language its texts were written in
            text = _notification_text(notification, reference)
        bot_message_enqueue(chat_id=link.chat_id, text=text, customer=link.customer, user=link.user,
                            reference=reference, notification=notification)


def telegram_audience(*, kind: str, customer_ids: set[int]) -> set[int]:
    """notifications channel audience: the customers with a linked chat that chose `kind` (one query)."""
    if not selectors.telegram_enabled():
        return set()
    return set(TelegramLink.objects.filter(customer_id__in=list(customer_ids), kinds__contains=[kind],
                                           user__is_active=True).values_list("customer_id", flat=True))


def telegram_deliver(*, outbox_id: int) -> DeliveryResult:
    """Send one outbox row unless another worker has it or it is already sent.

    The claim is a single UPDATE … WHERE status='pending' committed before the HTTP call, so of two
    workers racing for the row exactly one sends it.
    """
    if not outbox_claim(TelegramOutbox, outbox_id):
        return DeliveryResult("skipped")
    row = TelegramOutbox.objects.get(pk=outbox_id)
    try:
        message_id = bot_api.send_message(chat_id=row.chat_id, text=row.text,
                                          reply_to_message_id=row.reply_to_message_id)
    except bot_api.BotApiError as error:
        return _record_failure(row, error)
    outbox_mark_sent(TelegramOutbox, outbox_id, message_id=message_id)
    return DeliveryResult("sent")


def _record_failure(row: TelegramOutbox, error: bot_api.BotApiError) -> DeliveryResult:
    message = str(error)[:2000]
    logger.warning("Telegram message %s to chat %s failed (attempt %s): %s", row.pk, row.chat_id, row.attempts, message)
    if error.permanent or row.attempts >= settings.TELEGRAM_MAX_ATTEMPTS:
        outbox_mark_failed(TelegramOutbox, row.pk, error=message)
        if error.status == 403:  # the user blocked the bot or deleted their account: stop writing there
            link_drop_forbidden(chat_id=row.chat_id)
        return DeliveryResult("failed")
    delay = max(error.retry_after or 0, retry_delay_seconds(row.attempts))
    return outbox_back_off(TelegramOutbox, row.pk, error=message, delay=delay)


def telegram_outbox_sweep() -> list[int]:
    """Recover lost bot-message deliveries and return the ids due for sending (see `outbox_sweep_rows`)."""
    return outbox_sweep_rows(TelegramOutbox, max_attempts=settings.TELEGRAM_MAX_ATTEMPTS)


UPDATE_PRUNE_BATCH = 5_000


def telegram_updates_prune(*, now: datetime | None = None) -> int:
    """Delete stored webhook updates older than TELEGRAM_UPDATE_RETENTION_DAYS (a batch per call)."""
    cutoff = (now or timezone.now()) - timedelta(days=settings.TELEGRAM_UPDATE_RETENTION_DAYS)
    with transaction.atomic():
        ids = list(TelegramUpdate.objects.filter(received_at__lt=cutoff).order_by("received_at")
                   .values_list("pk", flat=True)[:UPDATE_PRUNE_BATCH])
        deleted, _by_model = TelegramUpdate.objects.filter(pk__in=ids).delete()
    return deleted


@transaction.atomic
def telegram_retry(*, outbox_ids: list[int]) -> int:
    """Staff: give failed messages a fresh set of attempts and queue them now."""
    ids = outbox_reset_failed(TelegramOutbox, outbox_ids)
    for outbox_id in ids:
        _deliver_after_commit(outbox_id)
    return len(ids)


@transaction.atomic
def customer_telegram_erase(*, customer: Customer) -> None:
    """Forget the chats, what the bot wrote to them and what they wrote to the bot.

    Chats the customer linked earlier count too (the bot wrote to them), except a chat that is now
    linked to another customer: what it writes is that customer's."""
    chat_ids = set(TelegramLink.objects.filter(customer=customer).values_list("chat_id", flat=True))
    chat_ids |= set(TelegramOutbox.objects.filter(customer=customer).values_list("chat_id", flat=True))
    chat_ids -= set(TelegramLink.objects.filter(chat_id__in=chat_ids).exclude(customer=customer)
                    .values_list("chat_id", flat=True))
    TelegramLink.objects.filter(customer=customer).delete()
    TelegramLinkToken.objects.filter(user__customer=customer).delete()
    TelegramOutbox.objects.filter(customer=customer).delete()
    TelegramUpdate.objects.filter(chat_id__in=chat_ids).delete()


# --- webhook updates ------------------------------------------------------------------------------

def update_handle(*, update: dict) -> str:
    """Record one webhook update and act on it once; a redelivered update_id does nothing. Returns the outcome."""
    update_id = _int64(update.get("update_id"))
    if update_id is None:
        raise ValueError("update without an integer update_id")
    message = update.get("message") if isinstance(update.get("message"), dict) else None
    chat = message.get("chat") if message and isinstance(message.get("chat"), dict) else {}
    chat_id = _int64(chat.get("id"))
    with transaction.atomic():
        row, created = TelegramUpdate.objects.get_or_create(
            update_id=update_id, defaults={"payload": update, "chat_id": chat_id}
        )
        if not created:
            return "duplicate"
        if chat_id is None or chat.get("type") != "private":
            outcome = "ignored"  # edits, group chats, channel posts: the bot only talks in private chats
        else:
            outcome = _message_handle(message, chat_id)
        row.outcome = outcome
        row.save(update_fields=["outcome"])
    return outcome


def _int64(value) -> int | None:
    """Telegram ids fit a PostgreSQL bigint; anything else is not an id."""
    if isinstance(value, int) and not isinstance(value, bool) and -2**63 <= value < 2**63:
        return value
    return None


def _dict(value) -> dict:
    return value if isinstance(value, dict) else {}


def _settings_url() -> str:
    return settings.PORTAL_BASE_URL + reverse("telegram:settings")


def _sender_language(message: dict) -> str:
    code = str(_dict(message.get("from")).get("language_code") or "").split("-")[0]
    return code if code in dict(settings.LANGUAGES) else settings.LANGUAGE_CODE


def _message_handle(message: dict, chat_id: int) -> str:
    text = message.get("text").strip() if isinstance(message.get("text"), str) else ""
    message_id = _int64(message.get("message_id"))
    link = selectors.link_for_chat(chat_id)
    language = link.customer.language if link else _sender_language(message)

    def answer(reply_text: str, *, to_link: TelegramLink | None = link) -> None:
        bot_message_enqueue(chat_id=chat_id, text=reply_text, customer=to_link.customer if to_link else None,
                            user=to_link.user if to_link else None, reply_to_message_id=message_id)

    command, _sep, argument = text.partition(" ")
    command = command.split("@")[0]  # "/start@PortalBot" in clients that add the bot name
    if command == "/start":
        return _start(message, chat_id, argument.strip(), link, language, answer)
    with translation.override(language):
        if command == "/stop":
            if link is None:
                answer(_("This chat is not linked to an account."))
                return "unlinked_chat"
            link_delete(user=link.user)
            answer(_("Done: this chat is no longer linked to your %(portal)s account.") % {"portal": settings.PORTAL_NAME},
                   to_link=None)
            return "unlinked"
        if link is None:
            answer(_("This chat is not linked to an account. To link it, press “Link Telegram” on %(url)s")
                   % {"url": _settings_url()})
            return "unlinked_chat"
        reply_to = message.get("reply_to_message")
        if not isinstance(reply_to, dict) or message_id is None:
            answer(_("To answer a ticket, reply to the bot's message about it."))
            return "not_a_reply"
        original = selectors.outbox_message_for_reply(chat_id=chat_id, message_id=_int64(reply_to.get("message_id")))
        if original is None or original.customer_id != link.customer_id or not original.reference:
            answer(_("Sorry, this message cannot be answered here. Please reply in the portal."))
            return "reply_refused"
        if not text:
            answer(_("Only text replies can be added here. Attach files in the portal."))
            return "reply_refused"
        telegram_message = TelegramMessage(user=link.user, chat_id=chat_id, message_id=message_id, text=text)
        try:
            handled = handle_reply(customer=link.customer, telegram_message=telegram_message,
                                   reply_to_reference=original.reference)
        except ValidationError as error:
            answer(" ".join(error.messages))
            return "reply_rejected"
        if not handled:
            answer(_("Sorry, this message cannot be answered here. Please reply in the portal."))
            return "reply_refused"
        answer(_("Your reply was added to the ticket."))
        return "reply_added"


def _start(message: dict, chat_id: int, token: str, link, language: str, answer) -> str:
    if token:
        sender = _dict(message.get("from"))
        name = " ".join(str(sender[key]) for key in ("first_name", "last_name") if sender.get(key))
        new_link = link_confirm(token=token, chat_id=chat_id, telegram_username=str(sender.get("username") or ""),
                                telegram_name=name)
        if new_link is not None:
            with translation.override(new_link.customer.language):
                answer(_("This chat is now linked to your %(portal)s account (client ID %(client_id)s). "
                         "Choose which notifications come here on the Telegram page of the portal. "
                         "To answer a ticket, reply to its message.")
                       % {"portal": settings.PORTAL_NAME, "client_id": new_link.customer_id}, to_link=new_link)
            return "linked"
    with translation.override(language):
        if token:
            answer(_("This link has expired or was already used. Press “Link Telegram” in the portal again."))
            return "link_refused"
        if link is not None:
            answer(_("This chat is linked to your %(portal)s account. Send /stop to unlink it.")
                   % {"portal": settings.PORTAL_NAME})
        else:
            answer(_("Hello! To get %(portal)s notifications here, press “Link Telegram” on %(url)s")
                   % {"portal": settings.PORTAL_NAME, "url": _settings_url()})
    return "help"
