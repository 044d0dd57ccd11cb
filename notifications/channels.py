"""Extra delivery channels (e.g. Telegram) without notifications knowing them.

A channel registers `fn(notification)` in its AppConfig.ready(); `notify()` calls every channel
inside its transaction right after storing the inbox row, so a channel's own outbox rows commit or
roll back together with the notification.
"""
from collections.abc import Callable

_channels: list[Callable] = []


def register_channel(fn: Callable) -> None:
    if fn not in _channels:
        _channels.append(fn)


def dispatch(notification) -> None:
    for channel in _channels:
        channel(notification)
