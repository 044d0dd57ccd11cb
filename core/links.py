"""{% load links %} — `{{ invoice.pk|link:"billing:invoice_detail" }}`: the URL of a view that takes one
integer id, for list rows.

`{% url %}` runs the resolver's reverse (pattern lookup, argument checks, quoting) for every row;
this reverses each URL name once per script prefix with a marker id and then only puts the row's id in
its place. Registered as a template library in settings.TEMPLATES (core is not an app).
"""
from django import template
from django.urls import get_script_prefix, reverse

register = template.Library()

_MARK = 918273645  # an id no URL contains by accident
_shapes: dict[tuple[str, str], tuple[str, str] | None] = {}


def _shape(name: str) -> tuple[str, str] | None:
    """The URL around the id for this script prefix (None: the id is not a plain part of it, reverse each)."""
    key = (get_script_prefix(), name)
    if key not in _shapes:
        pieces = reverse(name, args=[_MARK]).split(str(_MARK))
        _shapes[key] = (pieces[0], pieces[1]) if len(pieces) == 2 else None
    return _shapes[key]


def link_for(name: str, pk) -> str:
    shape = _shape(name)
    if shape is None:
        return reverse(name, args=[pk])
    return f"{shape[0]}{int(pk)}{shape[1]}"


def link_maker(name: str):
    """`link_for(name, ·)` for a page's many ids: the script prefix and the URL's shape read once."""
    shape = _shape(name)
    if shape is None:
        return lambda pk: reverse(name, args=[pk])
    start, end = shape
    return lambda pk: f"{start}{int(pk)}{end}"


@register.filter
def link(pk, name: str) -> str:
    return link_for(name, pk)
