"""{% load ticket_tags %} — `{{ message.body|message_html }}`: a message body with its links and line
breaks, as `{{ body|urlize|linebreaksbr }}` renders it; `{{ ticket.status|ticket_status_badge }}` and
`{{ ticket.priority|ticket_priority_badge }}`: a ticket's badges, their markup's one home (the list prints
two per row, the thread page and the dashboard's tickets card use them too);
`{{ name|department_name }}`: a department's name as customers read it (Department.display_name);
`{{ reply_form|reply_form_html }}`: the thread page's reply form as `{{ reply_form|crispy }}` writes it.

Django's urlize looks at every word in Python; for a 40-message thread it was the largest part of the
page. The result depends on the text alone, so each worker keeps the latest bodies' HTML. A badge
depends on the value and the language alone: each is built once per (value, language). So does an
unbound reply form's crispy markup (~0.6 ms of crispy's templates on every open thread's page).
"""
from functools import lru_cache

from crispy_forms.templatetags.crispy_forms_filters import as_crispy_form
from django import template
from django.template.defaultfilters import linebreaksbr, urlize
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.translation import get_language, pgettext

from tickets.models import Ticket

register = template.Library()


@lru_cache(maxsize=2048)
def _body_html(body: str) -> SafeString:
    return linebreaksbr(urlize(body, autoescape=True), autoescape=True)


@register.filter
def message_html(body: str) -> SafeString:
    return _body_html(str(body))


_STATUS_CLASSES = {"answered": "text-bg-success", "closed": "text-bg-secondary", "customer_replied": "text-bg-info"}
_PRIORITY_CLASSES = {"urgent": "text-bg-danger", "high": "text-bg-warning", "low": "text-bg-light border"}
_STATUS_LABELS = dict(Ticket.Status.choices)
_PRIORITY_LABELS = dict(Ticket.Priority.choices)
_badges: dict[tuple[str, str, str | None], SafeString] = {}


def _badge(kind: str, value: str) -> SafeString:
    key = (kind, value, get_language())
    html = _badges.get(key)
    if html is None:
        if kind == "status":  # the label as get_status_display() prints it (the raw value when not a choice)
            html = format_html('<span class="badge {}" data-testid="ticket-status">{}</span>',
                               _STATUS_CLASSES.get(value, "text-bg-primary"), _STATUS_LABELS.get(value, value))
        else:
            html = format_html('<span class="badge {}">{}</span>',
                               _PRIORITY_CLASSES.get(value, "text-bg-secondary"), _PRIORITY_LABELS.get(value, value))
        if len(_badges) < 1024:  # values are choices; a bound all the same
            _badges[key] = html
    return html


@register.filter
def ticket_status_badge(status: str) -> SafeString:
    return _badge("status", status)


@register.filter
def ticket_priority_badge(priority: str) -> SafeString:
    return _badge("priority", priority)


@register.filter
def department_name(name: str) -> str:
    """Department.display_name from the name alone (list rows read names, not Department objects)."""
    return pgettext("department", name)


_unbound_forms: dict[tuple, SafeString] = {}


@register.filter
def reply_form_html(form) -> SafeString:
    """`{{ form|crispy }}`. An unbound form (the thread page's empty reply form) prints what its class, the
    language and its fields' labels, help texts and widget attributes make it (no values, no errors, no
    request): rendered once per such key. A bound form (a refused reply: its values and errors) each time."""
    if form.is_bound or form.initial:
        return as_crispy_form(form)
    key = (type(form), form.prefix, form.auto_id, get_language(), tuple(
        (name, str(field.label), str(field.help_text), field.required, tuple(sorted(field.widget.attrs.items())))
        for name, field in form.fields.items()))
    html = _unbound_forms.get(key)
    if html is None:
        html = as_crispy_form(form)
        if len(_unbound_forms) < 64:  # one key per language in practice; a bound all the same
            _unbound_forms[key] = html
    return html
