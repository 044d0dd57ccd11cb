
from functools import lru_cache

from django import template
from django.utils.html import format_html
from django.utils.translation import get_language

from billing.hooks import payment_method_label
from billing.models import Invoice
from billing.money import format_money

register = template.Library()


@register.filter
def money(amount, currency):
    """{{ invoice.total|money:invoice.currency }} -> localized "€1,234.50"."""
    return format_money(amount, currency)


@register.filter
def movement_text(entry):
    """{{ entry|movement_text }}: a balance movement in plain words (see selectors.describe_transaction)."""
    from billing.selectors import describe_transaction

    return describe_transaction(entry.transaction, entry.amount)


@register.filter
def method_label(code):
    return payment_method_label(code)


@register.simple_tag(takes_context=True)
def sort_link(context, field):
    """Query string toggling the sort on `field`, keeping the filter and search."""
    request = context["request"]
    params = request.GET.copy()
    current = params.get("sort", "-date")
    params["sort"] = field if current == f"-{field}" else f"-{field}"
    params.pop("page", None)
    return "?" + params.urlencode()


_INVOICE_BADGE_CLASSES = {"paid": "text-bg-success", "unpaid": "text-bg-warning", "in_progress": "text-bg-info"}


@register.filter
def invoice_status_badge(invoice):
    """{{ invoice|invoice_status_badge }}: the invoice's status badge (in Python: list rows render one per row)."""
    return invoice_status_badge_of(invoice.status)


@register.filter
def invoice_status_badge_of(status: str):
    """{{ row.status|invoice_status_badge_of }}: the badge of an invoice status, made once per status and language."""
    return _status_badge(status, get_language())


@lru_cache(maxsize=64)
def _status_badge(status: str, language: str | None):
    label = dict(Invoice.Status.choices).get(status, status)
    return format_html('<span class="badge {}" data-testid="invoice-status">{}</span>',
                       _INVOICE_BADGE_CLASSES.get(status, "text-bg-secondary"), label)
