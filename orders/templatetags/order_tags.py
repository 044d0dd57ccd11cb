"""{% load order_tags %} — `{{ order|order_status_badge }}`: an order's status badge.

Written in Python rather than included as a template: list rows render it per row, and the include
with its nested conditions cost more than the rest of a row's cells.
"""
from django import template
from django.utils.html import format_html
from django.utils.translation import gettext as _

register = template.Library()

_BADGE_CLASSES = {"active": "text-bg-success", "expired": "text-bg-warning", "suspended": "text-bg-danger"}


@register.filter
def order_status_badge(order) -> str:
    status = order.status
    setting_up = status == "pending" and order.provisioning != "not_started"
    if status == "pending":
        css = "text-bg-info" if setting_up else "text-bg-warning"
    else:
        css = _BADGE_CLASSES.get(status, "text-bg-secondary")
    label = _("Paid, being set up") if setting_up else order.get_status_display()
    html = format_html('<span class="badge {}" data-testid="order-status">{}</span>', css, label)
    if order.cancel_at_period_end and status == "active":
        html += format_html(' <span class="badge text-bg-light border" title="{}">{}</span>',
                            _("Cancels at the end of the paid period"), _("Cancels at period end"))
    return html
