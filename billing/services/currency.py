"""Account currency: previewing and switching the currency the customer's balance is kept in."""

from dataclasses import dataclass
from decimal import Decimal

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts.models import Customer
from accounts.services.activity import activity_record

from .. import hooks
from ..models import Currency, LedgerAccount, LedgerTransaction
from ..money import quantize
from ..rates import Quote, RateTable
from .errors import BillingError
from .ledger import customer_account, fx_accounts, ledger_accounts_lock, ledger_post


@dataclass(frozen=True)
class CurrencyChangePreview:
    old_currency: str
    new_currency: str
    old_balance: Decimal
    new_balance: Decimal
    quote: Quote


def account_currency_change_preview(*, customer: Customer, currency: str) -> CurrencyChangePreview:
    if currency == customer.currency:
        raise BillingError(_("This is already your account currency."))
    if not Currency.objects.filter(code=currency, enabled=True).exists():
        raise BillingError(_("This currency is not available."))
    balance = customer_account(customer=customer).balance
    if balance < 0:
        raise BillingError(_("Settle the negative balance before changing the currency."))
    quote = RateTable().quote(customer.currency, currency)
    return CurrencyChangePreview(customer.currency, currency, balance, quantize(balance * quote.rate, currency), quote)


@transaction.atomic
def account_currency_change(*, customer: Customer, currency: str, expected_rate: Decimal, actor=None) -> LedgerTransaction | None:
    """Switch the account currency: convert the balance through the FX accounts at the rate the customer
    confirmed, and with it every amount stored in the account currency (the low-balance threshold here,
    gateways' auto-payment cap through `hooks.register_currency_change_handler`), all under one lock.

    FOR NO KEY UPDATE on the customer row, which every balance posting also takes
    (`customer_currency_lock`): a payment that runs meanwhile waits, then credits the new account;
    and unlike FOR UPDATE it does not block the foreign-key checks (KEY SHARE) of rows that merely
    reference the customer.
    """
    customer = Customer.objects.select_for_update(no_key=True).get(pk=customer.pk)
    preview = account_currency_change_preview(customer=customer, currency=currency)
    if preview.quote.rate != expected_rate:
        raise BillingError(_("The exchange rate has changed. Review the new amount and confirm again."), code="rate_changed")
    old = customer_account(customer=customer)
    new = customer_account(customer=customer, currency=currency)
    # Every account is created before any is locked: creating one while holding account locks waits
    # on a concurrent creator of the same code, which may be waiting for our locks.
    fx = fx_accounts(old.currency, currency)
    fx_old, fx_new = fx[old.currency], fx[currency]
    locked = ledger_accounts_lock([old, new, fx_old, fx_new])
    balance = locked[old.pk].balance
    if balance < 0:
        raise BillingError(_("Settle the negative balance before changing the currency."))
    table = RateTable()

    def convert(amount: Decimal, amount_currency: str) -> Decimal:
        if amount_currency == currency:
            return amount
        rate = preview.quote.rate if amount_currency == old.currency else table.quote(amount_currency, currency).rate
        return quantize(amount * rate, currency)

    # Stored amounts move first, so the posting below already sees the new currency and threshold.
    threshold = convert(customer.low_balance_threshold, customer.low_balance_threshold_currency)
    Customer.objects.filter(pk=customer.pk).update(
        currency=currency, low_balance_threshold=threshold, low_balance_threshold_currency=currency)
    customer.currency, customer.low_balance_threshold, customer.low_balance_threshold_currency = currency, threshold, currency
    # The same money in another currency is no new crossing of the threshold: the alert state moves too.
    LedgerAccount.objects.filter(pk=new.pk).update(low_balance_alerted=locked[old.pk].low_balance_alerted)
    for handler in hooks.currency_change_handlers():
        handler(customer, old.currency, currency, convert)
    tx = None
    if balance > 0:
        converted = quantize(balance * preview.quote.rate, currency)
        legs = [(old, -balance), (fx_old, balance), (fx_new, -converted), (new, converted)]
        tx = ledger_post(
            idempotency_key=f"conversion:{customer.pk}:{old.currency}:{currency}:{timezone.now().timestamp()}",
            kind=LedgerTransaction.Kind.CONVERSION, legs=legs, created_by=actor, quote=preview.quote,
            memo=_("Account currency changed from %(old)s to %(new)s") % {"old": old.currency, "new": currency},
        )
    activity_record(action="billing.currency_changed", customer=customer, actor=actor,
                    details={"from": old.currency, "to": currency, "rate": str(preview.quote.rate)})
    return tx
