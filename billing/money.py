"""Money helpers: the one place that knows minor units, rounding and display.

Rounding rule (the only one in the project): amounts are quantized to the currency's minor unit
(ISO 4217 via Babel: EUR/USD/RUB/GBP 2 decimals, JPY 0) with ROUND_HALF_UP, at the moment they are
posted (invoice line, tax, conversion result, payment). Intermediate products are never rounded.
"""
from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal, InvalidOperation
from functools import lru_cache

from babel.numbers import format_currency, get_currency_precision
from babel.core import Locale, UnknownLocaleError
from django.utils.translation import get_language, to_locale

ROUNDING = ROUND_HALF_UP


def minor_units(currency: str) -> int:
    return get_currency_precision(currency)


@lru_cache(maxsize=256)
def quantum(currency: str) -> Decimal:
    return Decimal(1).scaleb(-minor_units(currency))


def quantize(amount: Decimal, currency: str) -> Decimal:
    """Round `amount` to the currency's minor unit, half up (1.005 EUR -> 1.01, 0.5 JPY -> 1)."""
    if isinstance(amount, float):
        raise TypeError("Money is never a float")
    return Decimal(amount).quantize(quantum(currency), rounding=ROUNDING)


def quantize_down(amount: Decimal, currency: str) -> Decimal:
    """The one exception to half-up: how much of a converted balance may be applied to an invoice
    is rounded down, so the amount taken never exceeds what the balance holds."""
    return Decimal(amount).quantize(quantum(currency), rounding=ROUND_DOWN)


def fits_minor_units(amount: Decimal, currency: str) -> bool:
    """True if `amount` has no more decimals than the currency allows (10.001 EUR does not)."""
    try:
        return amount == amount.quantize(quantum(currency))
    except InvalidOperation:
        return False


def format_money(amount: Decimal | None, currency: str, locale: str | None = None) -> str:
    """Localized display, e.g. "€1,234.50" (en) / "1 234,50 €" (ru)."""
    if amount is None:
        return ""
    return _formatted(amount + 0, currency, locale or to_locale(get_language() or "en"))  # + 0: -0 prints as 0


@lru_cache(maxsize=8192)
def _formatted(amount: Decimal, currency: str, locale: str) -> str:
    """Memoised: list pages print the same amounts over and over, and Babel's formatting is the costly
    part (equal amounts with more zeros, 10.00 and 10.0000, are one key and print the same)."""
    try:
        babel_locale = Locale.parse(locale)
    except (UnknownLocaleError, ValueError):
        babel_locale = Locale.parse("en")
    return format_currency(quantize(amount, currency), currency, locale=babel_locale)
