from django.conf import settings
from django.db.models import F

from accounts.models import User
from notifications.kinds import KINDS, Category, Kind
from notifications.selectors import kinds_visible_to

from .models import TelegramLink, TelegramOutbox

# Offered ticked when a chat is first linked; the customer changes them on the Telegram page.
DEFAULT_KINDS = frozenset({
    Kind.TICKET_REPLY, Kind.TICKET_AUTOCLOSE_WARNING, Kind.INVOICE_ISSUED, Kind.LOW_BALANCE, Kind.AUTOPAY_FAILED,
    Kind.SERVICE_EXPIRING, Kind.RENEWAL_FAILED, Kind.SERVICE_SUSPENDED, Kind.ABUSE_REPORT, Kind.SECURITY_LOGIN,
    Kind.SECURITY_CHANGE,
})


def telegram_enabled() -> bool:
    return bool(settings.TELEGRAM_BOT_TOKEN and settings.TELEGRAM_BOT_USERNAME and settings.TELEGRAM_WEBHOOK_SECRET)


def deep_link(token: str) -> str:
    return f"https://t.me/{settings.TELEGRAM_BOT_USERNAME}?start={token}"


def link_for(user: User) -> TelegramLink | None:
    return TelegramLink.objects.filter(user=user).first()


def link_for_chat(chat_id: int) -> TelegramLink | None:
    """The chat's link; a revoked (inactive) user's chat counts as unlinked."""
    return (
        TelegramLink.objects.select_related("user", "customer")
        .filter(chat_id=chat_id, user__is_active=True, user__customer_id=F("customer_id")).first()
    )


def kinds_available(user: User) -> list[str]:
    """Kinds this user receives: those the role sees in the inbox (notifications.selectors.KIND_AREAS);
    the newsletter only when subscribed."""
    visible = set(kinds_visible_to(user))
    available = []
    for kind in KINDS:
        if kind not in visible:
            continue
        if kind == Kind.NEWSLETTER and not user.customer.newsletter:
            continue
        available.append(kind)
    return available


def kind_rows(user: User, link: TelegramLink) -> list[dict]:
    chosen = set(link.kinds)
    return [
        {"kind": kind, "label": Kind(kind).label, "description": KINDS[kind].description,
         "category_label": Category(KINDS[kind].category).label, "enabled": kind in chosen}
        for kind in kinds_available(user)
    ]


def outbox_message_for_reply(*, chat_id: int, message_id: int | None) -> TelegramOutbox | None:
    """The bot message a Telegram reply answers (message ids are unique per chat)."""
    if message_id is None:
        return None
    return TelegramOutbox.objects.filter(chat_id=chat_id, message_id=message_id).first()
