"""Registries other apps fill in their AppConfig.ready(), so billing never imports them.

- "invoice paid" handlers by invoice kind: orders activate/renew services when their invoice is paid.
  A handler runs inside the transaction that marks the invoice paid; raising rolls the payment back.
- payment method labels: gateways (issue 6) register the codes they record payments with.
- invoice owner locks by invoice kind: orders lock the order an invoice belongs to before billing locks
  the invoice, so paying and renewing take their row locks in the same order (docs/ARCHITECTURE.md).
- upcoming charges: orders report what the next month of services will cost, which auto-payment tops up.
- invoice payment panels and "invoice issued" email context: gateways add their part of the invoice page
  and of the email (the pay-without-login link).
"""
from collections.abc import Callable
from decimal import Decimal

from django.utils.translation import gettext_lazy as _

_invoice_paid_handlers: dict[str, list[Callable]] = {}

_payment_method_labels: dict[str, object] = {
    "bank_transfer": _("Bank transfer"),
    "staff": _("Staff credit"),
}


def register_invoice_paid_handler(kind: str, handler: Callable) -> None:
    handlers = _invoice_paid_handlers.setdefault(kind, [])
    if handler not in handlers:
        handlers.append(handler)


def invoice_paid_handlers(kind: str) -> list[Callable]:
    return list(_invoice_paid_handlers.get(kind, ()))


# Invoice owner locks: fn(invoice, skip_locked) -> bool, by invoice kind. Billing calls them before it
# locks an invoice row, so the owner's row (orders: the Order) is always locked first; False means the
# owner is locked elsewhere and `skip_locked` was asked.
_invoice_owner_lockers: dict[str, list[Callable]] = {}


def register_invoice_owner_lock(kind: str, locker: Callable) -> None:
    lockers = _invoice_owner_lockers.setdefault(kind, [])
    if locker not in lockers:
        lockers.append(locker)


def lock_invoice_owners(invoice, *, skip_locked: bool = False) -> bool:
    return all(locker(invoice, skip_locked) for locker in _invoice_owner_lockers.get(invoice.kind, ()))


# Upcoming charges: fn(*, customer, now) -> Decimal in the customer's account currency, what will be
# charged within the next month that no open invoice asks for yet (orders: renewals due, with tax).
_upcoming_charge_providers: list[Callable] = []


def register_upcoming_charges(provider: Callable) -> None:
    if provider not in _upcoming_charge_providers:
        _upcoming_charge_providers.append(provider)


def upcoming_charges(*, customer, now) -> Decimal:
    return sum((provider(customer=customer, now=now) for provider in _upcoming_charge_providers), Decimal("0"))


def register_payment_method(code: str, label) -> None:
    _payment_method_labels[code] = label


def payment_method_label(code: str) -> str:
    return str(_payment_method_labels.get(code, code))


# Invoice page payment panels: gateways register fn(request, invoice) -> HTML (or "") shown under
# "Pay by another method" on an open invoice.
_invoice_payment_panels: list[Callable] = []


def register_invoice_payment_panel(panel: Callable) -> None:
    if panel not in _invoice_payment_panels:
        _invoice_payment_panels.append(panel)


def invoice_payment_panels(request, invoice) -> list[str]:
    return [html for html in (panel(request, invoice) for panel in _invoice_payment_panels) if html]


# Payments page: fn(customer) -> [{"amount", "currency", "method", "invoice", "created_at"}] of payments a
# payment system accepted but has not confirmed yet (gateways: a card awaiting confirmation).
_payments_in_progress_providers: list[Callable] = []


def register_payments_in_progress(provider: Callable) -> None:
    if provider not in _payments_in_progress_providers:
        _payments_in_progress_providers.append(provider)


def payments_in_progress(customer) -> list[dict]:
    return [row for provider in _payments_in_progress_providers for row in provider(customer)]


# "Invoice issued" email context: fn(invoice) -> dict merged into the notification's context (gateways
# add the pay-without-login link). Billing's own keys win over a provider's.
_invoice_email_context_providers: list[Callable] = []


def register_invoice_email_context(provider: Callable) -> None:
    if provider not in _invoice_email_context_providers:
        _invoice_email_context_providers.append(provider)


def invoice_email_context(invoice) -> dict:
    context: dict = {}
    for provider in _invoice_email_context_providers:
        context.update(provider(invoice))
    return context


# Account currency change: fn(customer, old_currency, new_currency, convert) for amounts other apps
# store in the account currency (gateways' auto-payment cap). Runs inside the switch's transaction,
# under its lock on the customer row, after billing converted the balance and the low-balance
# threshold; `convert(amount, currency)` gives the amount in the new currency at the switch's rate.
_currency_change_handlers: list[Callable] = []


def register_currency_change_handler(handler: Callable) -> None:
    if handler not in _currency_change_handlers:
        _currency_change_handlers.append(handler)


def currency_change_handlers() -> list[Callable]:
    return list(_currency_change_handlers)
