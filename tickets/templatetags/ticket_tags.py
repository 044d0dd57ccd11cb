"""{% load ticket_tags %} — `{{ message.body|message_html }}`: a message body with its links and line
breaks, as `{{ body|urlize|linebreaksbr }}` renders it.

Django's urlize looks at every word in Python; for a 40-message thread it was the largest part of the
page. The result depends on the text alone, so each worker keeps the latest bodies' HTML.
"""
from functools import lru_cache

from django import template
from django.template.defaultfilters import linebreaksbr, urlize
from django.utils.safestring import SafeString

register = template.Library()


@lru_cache(maxsize=2048)
def _body_html(body: str) -> SafeString:
    return linebreaksbr(urlize(body, autoescape=True), autoescape=True)


@register.filter
def message_html(body: str) -> SafeString:
    return _body_html(str(body))
