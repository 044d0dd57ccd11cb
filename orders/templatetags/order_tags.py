"""{% load order_tags %} — `{{ order|order_status_badge }}`: an order's status badge (`order_status_badge_of`: a
table row's); `{{ event|event_label }}`:
an order event's label.

Written in Python rather than included as a template: list rows render it per row, and the include
with its nested conditions cost more than the rest of a row's cells.
"""
from functools import lru_cache

from django import template
from django.utils import translation
from django.utils.formats import localize
from django.utils.html import conditional_escape, format_html
from django.utils.safestring import mark_safe
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

register = template.Library()

_BADGE_CLASSES = {"active": "text-bg-success", "expired": "text-bg-warning", "suspended": "text-bg-danger"}


@register.filter
def order_status_badge(order) -> str:
    return order_status_badge_of(order.status, order.provisioning, order.cancel_at_period_end, translation.get_language())


def order_status_badge_of(status: str, provisioning: str, cancel_at_period_end: bool, language: str | None) -> str:
    """`order_status_badge` of an order's fields (a table row's) in the active `language`, read once by the caller."""
    return _status_badge(status, status == "pending" and provisioning != "not_started",
                         bool(cancel_at_period_end and status == "active"), language)


@lru_cache(maxsize=256)
def _status_badge(status: str, setting_up: bool, cancels: bool, language: str | None) -> str:
    """The badge depends on these and the active language alone, so each worker keeps it."""
    from ..models import Order

    if status == "pending":
        css = "text-bg-info" if setting_up else "text-bg-warning"
    else:
        css = _BADGE_CLASSES.get(status, "text-bg-secondary")
    label = _("Paid, being set up") if setting_up else Order(status=status).get_status_display()
    html = format_html('<span class="badge {}" data-testid="order-status">{}</span>', css, label)
    if cancels:
        html += format_html(' <span class="badge text-bg-light border" title="{}">{}</span>',
                            _("Cancels at the end of the paid period"), _("Cancels at period end"))
    return html


def _value(details: dict, key: str) -> str:
    """A detail as `{% blocktranslate with x=d.key %}` prints it: localized, escaped, "" when missing."""
    if key not in details:
        return ""
    return conditional_escape(localize(details[key]))


_PLAIN_EVENTS = {
    "placed": gettext_lazy("Order placed"), "paid": gettext_lazy("Order paid"),
    "waiting_staff": gettext_lazy("Waiting for staff to set up the server"),
    "expired": gettext_lazy("Expired"), "suspended": gettext_lazy("Suspended"), "unsuspended": gettext_lazy("Unsuspended"),
    "terminated": gettext_lazy("Terminated"), "cancelled": gettext_lazy("Cancelled"),
    "cancelled_at_period_end": gettext_lazy("Cancelled"), "cancelled_unpaid": gettext_lazy("Cancelled: not paid in time"),
    "cancel_scheduled": gettext_lazy("Cancellation scheduled for the end of the period"),
    "cancel_withdrawn": gettext_lazy("Cancellation withdrawn"),
    "auto_renew_changed": gettext_lazy("Auto-renewal setting changed"),
    "downgrade_withdrawn": gettext_lazy("Scheduled plan change withdrawn"),
    "provisioning_failed": gettext_lazy("Server setup failed; staff are on it"),
    "addon_paid_after_end": gettext_lazy("Add-on paid after the service ended"),
}
# action -> (message, {placeholder: details key})
_DETAILED_EVENTS = {
    "activated": (gettext_lazy("Activated, IP %(ip)s"), {"ip": "ip"}),
    "renewal_invoiced": (gettext_lazy("Renewal for %(n)s period(s) invoiced (%(invoice)s)"), {"n": "periods", "invoice": "invoice"}),
    "renewed": (gettext_lazy("Renewed for %(n)s period(s)"), {"n": "periods"}),
    "upgrade_invoiced": (gettext_lazy("Upgrade to %(plan)s invoiced (%(invoice)s)"), {"plan": "to", "invoice": "invoice"}),
    "plan_changed": (gettext_lazy("Plan changed from %(old)s to %(new)s"), {"old": "from", "new": "to"}),
    "downgrade_scheduled": (gettext_lazy("Switch to %(plan)s scheduled for the next renewal"), {"plan": "to"}),
    "renewal_withdrawn": (gettext_lazy("Renewal invoice %(invoice)s withdrawn: the plan changed"), {"invoice": "invoice"}),
    "renewal_repriced": (gettext_lazy("Renewal re-issued at the new price (%(invoice)s)"), {"invoice": "invoice"}),
    "addon_invoiced": (gettext_lazy("Add-on %(addon)s: %(old)s → %(new)s step(s) invoiced (%(invoice)s)"),
                       {"addon": "addon", "old": "from", "new": "to", "invoice": "invoice"}),
    "extended": (gettext_lazy("Extended by %(n)s day(s)"), {"n": "days"}),
}
_ADDON_CHANGED = (gettext_lazy("Add-on %(addon)s: %(old)s → %(new)s step(s)"), {"addon": "addon", "old": "from", "new": "to"})
_ADDON_CREDITED = (gettext_lazy("Add-on %(addon)s: %(old)s → %(new)s step(s), %(credit)s credited"),
                   {"addon": "addon", "old": "from", "new": "to", "credit": "credit"})


@register.filter
def event_label(event) -> str:
    """An order event's label (the order page's history, the admin, OrderEvent's text); the messages
    and their placeholders are those the label template had."""
    action = event.action
    plain = _PLAIN_EVENTS.get(action)
    if plain is not None:
        return conditional_escape(str(plain))
    details = event.details if isinstance(event.details, dict) else {}
    if action == "addon_changed":
        message, keys = _ADDON_CREDITED if details.get("credit") else _ADDON_CHANGED
    elif action in _DETAILED_EVENTS:
        message, keys = _DETAILED_EVENTS[action]
    else:
        return conditional_escape(action)
    return mark_safe(str(message) % {name: _value(details, key) for name, key in keys.items()})
