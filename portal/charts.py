"""The dashboard's spending chart: month labels and money on core.charts' bar geometry.

Amounts stay Decimal for every label; floats are used only for pixel coordinates.
"""
from decimal import Decimal
from functools import lru_cache

from babel.dates import format_date
from babel.numbers import format_compact_decimal
from django.utils import translation

from billing.money import format_money
from core.charts import bar_geometry


@lru_cache(maxsize=2048)
def _compact(amount: Decimal, locale: str) -> str:
    """Memoised, as the month labels: Babel's formatting is most of the chart's cost, and a customer's
    months and amounts repeat from one dashboard view to the next."""
    return format_compact_decimal(amount, locale=locale, fraction_digits=1)


@lru_cache(maxsize=512)
def _month_labels(month, locale: str) -> tuple[str, str]:
    return format_date(month, "LLL", locale=locale), format_date(month, "LLLL y", locale=locale)


def bar_chart(points: list[tuple], currency: str) -> dict:
    """`points` = [(date, Decimal amount)] → bars, y ticks and sizes for templates/partials/bar_chart.svg."""
    locale = translation.to_locale(translation.get_language() or "en")
    chart = bar_geometry([amount for _, amount in points], tick_label=lambda value: _compact(value, locale))
    for bar, (month, amount) in zip(chart["bars"], points):
        bar.update({
            "month": month, "label": _month_labels(month, locale)[0], "long_label": _month_labels(month, locale)[1],
            "amount": amount, "money": format_money(amount, currency, locale),
            "short": _compact(amount, locale) if amount else "",
        })
    return chart | {"currency": currency}
