"""Server-side bar chart geometry for inline SVG (no JavaScript, no CDN).

Amounts stay Decimal for every label; floats are used only for pixel coordinates.
"""
from decimal import Decimal

from babel.dates import format_date
from babel.numbers import format_compact_decimal
from django.utils import translation

from billing.money import format_money

WIDTH, HEIGHT = 720, 260
LEFT, RIGHT, TOP, BOTTOM = 72, 12, 28, 44
TICKS = 4


def _nice_ceiling(value: Decimal) -> Decimal:
    """Smallest 1/2/2.5/5 × 10^k at or above `value` (the y-axis maximum)."""
    if value <= 0:
        return Decimal(1)
    magnitude = Decimal(10) ** (value.adjusted())
    for factor in (Decimal(1), Decimal(2), Decimal("2.5"), Decimal(5), Decimal(10)):
        if value <= factor * magnitude:
            return factor * magnitude
    return 10 * magnitude


def _compact(amount: Decimal, locale: str) -> str:
    return format_compact_decimal(amount, locale=locale, fraction_digits=1)


def bar_chart(points: list[tuple], currency: str) -> dict:
    """`points` = [(date, Decimal amount)] → bars, y ticks and sizes for templates/partials/bar_chart.svg."""
    locale = translation.to_locale(translation.get_language() or "en")
    top = _nice_ceiling(max((amount for _, amount in points), default=Decimal(0)))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    slot = plot_w / max(len(points), 1)
    bar_w = slot * 0.62
    bars = []
    for index, (month, amount) in enumerate(points):
        height = float(amount / top) * plot_h if amount > 0 else 0.0
        x = LEFT + index * slot + (slot - bar_w) / 2
        bars.append({
            "month": month, "label": format_date(month, "LLL", locale=locale), "long_label": format_date(month, "LLLL y", locale=locale),
            "amount": amount, "money": format_money(amount, currency, locale),
            "short": _compact(amount, locale) if amount else "",
            "x": round(x, 1), "y": round(TOP + plot_h - height, 1), "w": round(bar_w, 1), "h": round(height, 1),
            "cx": round(x + bar_w / 2, 1),
        })
    ticks = []
    for step in range(TICKS + 1):
        value = top * step / TICKS
        ticks.append({"y": round(TOP + plot_h - plot_h * step / TICKS, 1), "label": _compact(value, locale)})
    return {
        "width": WIDTH, "height": HEIGHT, "left": LEFT, "right": WIDTH - RIGHT, "top": TOP, "bottom": TOP + plot_h,
        "bars": bars, "ticks": ticks, "currency": currency, "label_y": HEIGHT - 10, "axis_x": TOP + plot_h + 16,
        "empty": all(amount == 0 for _, amount in points),
    }
