"""What other apps contribute to "export my data" and to anonymizing an account.

accounts sits at the bottom of the app map and never imports the domain apps; each of them registers
here from its AppConfig.ready() (see `<app>/personal_data.py`).

- `register_exporter(name, fn)`: `fn(customer)` returns rows (`list[dict]`, written to the ZIP as
  `<name>.json` and `<name>.csv`) or raw bytes (written as `<name>`).
- `register_erasure_handler(fn, stage=...)`: `fn(customer, actor)` runs inside the erasure transaction.
  `Stage.END_SERVICES` handlers run before `Stage.ANONYMIZE` ones: services are terminated first.
- `register_deletion_check(fn)`: `fn(customer)` returns `OpenItem`s staff see when reviewing an account
  deletion (balance, open invoices, active services); approval is refused while one `blocks`.
"""
from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum

from django.utils.translation import gettext_lazy as _

Exporter = Callable[..., "list[dict] | bytes"]
ErasureHandler = Callable[..., None]


class Stage(IntEnum):
    END_SERVICES = 10
    ANONYMIZE = 20


# The reason handlers give when they end something because the account is being deleted.
ERASURE_REASON = _("Account deletion")

_exporters: dict[str, Exporter] = {}
_erasure_handlers: list[tuple[int, str, ErasureHandler]] = []


def register_exporter(name: str, fn: Exporter) -> None:
    if not name or "/" in name or name.startswith("."):
        raise ValueError(f"Exporter name {name!r} must be a plain file name.")
    _exporters[name] = fn


def register_erasure_handler(fn: ErasureHandler, *, stage: Stage = Stage.ANONYMIZE) -> None:
    key = f"{fn.__module__}.{fn.__qualname__}"
    if not any(existing == key for _stage, existing, _fn in _erasure_handlers):  # ready() may run twice
        _erasure_handlers.append((int(stage), key, fn))


def exporters() -> dict[str, Exporter]:
    return dict(sorted(_exporters.items()))


def erasure_handlers() -> list[ErasureHandler]:
    return [fn for _stage, _key, fn in sorted(_erasure_handlers, key=lambda item: item[0])]


@dataclass(frozen=True)
class OpenItem:
    """Something staff must see before approving an account deletion; `blocks`: it must be settled
    first (money: refunded or written off on the ledger), otherwise the approval ends it (services)."""

    label: str
    value: str
    blocks: bool


DeletionCheck = Callable[..., "list[OpenItem]"]
_deletion_checks: dict[str, DeletionCheck] = {}


def register_deletion_check(fn: DeletionCheck) -> None:
    _deletion_checks[f"{fn.__module__}.{fn.__qualname__}"] = fn  # ready() may run twice


def deletion_open_items(customer) -> "list[OpenItem]":
    return [item for _key, fn in sorted(_deletion_checks.items()) for item in fn(customer)]

