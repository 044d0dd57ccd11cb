"""The dashboard's spending chart: month labels and money on core.charts' bar geometry.

Amounts stay Decimal for every label; floats are used only for pixel coordinates.
"""
from decimal import Decimal

from babel.dates import format_date
from babel.numbers import format_compact_decimal
from django.utils import translation

from billing.money import format_money
from core.charts import bar_geometry


def _compact(amount: Decimal, locale: str) -> str:
    return format_compact_decimal(amount, locale=locale, fraction_digits=1)


def bar_chart(points: list[tuple], currency: str) -> dict:
    """`points` = [(date, Decimal amount)] → bars, y ticks and sizes for templates/partials/bar_chart.svg."""
    locale = translation.to_locale(translation.get_language() or "en")
    chart = bar_geometry([amount for _, amount in points], tick_label=lambda value: _compact(value, locale))
    for bar, (month, amount) in zip(chart["bars"], points):
        bar.update({
            "month": month, "label": format_date(month, "LLL", locale=locale), "long_label": format_date(month, "LLLL y", locale=locale),
            "amount": amount, "money": format_money(amount, currency, locale),
            "short": _compact(amount, locale) if amount else "",
        })
    return chart | {"currency": currency}
