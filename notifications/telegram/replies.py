"""Where a reply written in Telegram goes, without this app knowing tickets (or any other domain).

An app registers `fn(customer, telegram_message, reply_to_reference) -> bool` in its AppConfig.ready().
`reply_to_reference` is the reference stored with the bot message being answered (e.g. "ticket:10001").
A handler returns True once it has stored the reply, False when the reference is not its own or names
nothing this customer may answer; a `ValidationError` carries a message the bot shows the customer.
Handlers run inside the webhook's transaction.
"""
from collections.abc import Callable
from dataclasses import dataclass

_handlers: list[Callable] = []


@dataclass(frozen=True)
class TelegramMessage:
    user: object  # accounts.User linked to the chat
    chat_id: int
    message_id: int
    text: str


def register_reply_handler(fn: Callable) -> None:
    if fn not in _handlers:
        _handlers.append(fn)


def handle_reply(*, customer, telegram_message: TelegramMessage, reply_to_reference: str) -> bool:
    return any(handler(customer, telegram_message, reply_to_reference) for handler in _handlers)
