"""Bar chart geometry for server-rendered inline SVG (no JavaScript, no CDN), shared by the dashboard's
spending chart (portal.charts) and the server usage graphs (orders.usage).

Values stay Decimal for labels; floats are used only for pixel coordinates.
"""
from collections.abc import Callable
from decimal import Decimal

WIDTH, HEIGHT = 720, 260
LEFT, RIGHT, TOP, BOTTOM = 72, 12, 28, 44
TICKS = 4


def nice_ceiling(value: Decimal) -> Decimal:
    """Smallest 1/2/2.5/5 × 10^k at or above `value` (the y-axis maximum)."""
    if value <= 0:
        return Decimal(1)
    magnitude = Decimal(10) ** (value.adjusted())
    for factor in (Decimal(1), Decimal(2), Decimal("2.5"), Decimal(5), Decimal(10)):
        if value <= factor * magnitude:
            return factor * magnitude
    return 10 * magnitude


def bar_geometry(values: list[Decimal], *, tick_label: Callable[[Decimal], str], bar_share: float = 0.62) -> dict:
    """Bars (x, y, w, h, cx, value) and y ticks for `values`; callers add their own labels to each bar."""
    top = nice_ceiling(max(values, default=Decimal(0)))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    slot = plot_w / max(len(values), 1)
    bar_w = slot * bar_share
    bars = []
    for index, value in enumerate(values):
        height = float(value / top) * plot_h if value > 0 else 0.0
        x = LEFT + index * slot + (slot - bar_w) / 2
        bars.append({"value": value, "x": round(x, 1), "y": round(TOP + plot_h - height, 1), "w": round(bar_w, 1),
                     "h": round(height, 1), "cx": round(x + bar_w / 2, 1)})
    ticks = [{"y": round(TOP + plot_h - plot_h * step / TICKS, 1), "label": tick_label(top * step / TICKS)}
             for step in range(TICKS + 1)]
    return {"width": WIDTH, "height": HEIGHT, "left": LEFT, "right": WIDTH - RIGHT, "top": TOP, "bottom": TOP + plot_h,
            "bars": bars, "ticks": ticks, "label_y": HEIGHT - 10, "axis_x": TOP + plot_h + 16,
            "empty": all(value == 0 for value in values)}
