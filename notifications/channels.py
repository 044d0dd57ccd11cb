"""Extra delivery channels (e.g. Telegram) without notifications knowing them.

A channel registers `fn(notification)` in its AppConfig.ready(); `notify()` calls every channel
inside its transaction right after storing the inbox row, so a channel's own outbox rows commit or
roll back together with the notification.

A channel may also register an `audience(kind=, customer_ids=)`: the customers among `customer_ids`
it could send `kind` to (a superset is fine), in at most one query. Batch jobs (`bulk.notify_many`)
ask once per batch and dispatch only those customers' notifications (to every channel, as `notify()`
does: each still checks for itself); a channel without an audience reaches every customer.
"""
from collections.abc import Callable

_channels: list[Callable] = []
_audiences: dict[Callable, Callable] = {}


def register_channel(fn: Callable, *, audience: Callable | None = None) -> None:
    if fn not in _channels:
        _channels.append(fn)
    if audience is not None:
        _audiences[fn] = audience


def dispatch(notification) -> None:
    for channel in _channels:
        channel(notification)


def customers_reached(*, kind: str, customer_ids: set[int]) -> set[int]:
    """The customers among `customer_ids` some channel may act on for `kind` (see the module docstring)."""
    reached: set[int] = set()
    for channel in _channels:
        audience = _audiences.get(channel)
        reached |= customer_ids if audience is None else audience(kind=kind, customer_ids=customer_ids)
        if len(reached) == len(customer_ids):
            break
    return reached
