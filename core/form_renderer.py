"""A form renderer that writes the plain widgets' markup in Python.

Django renders every widget through its form templates (`input.html` includes `attrs.html`, a
`<select>` includes one template per option): on the Settings pages that was most of each field's
cost, more than the crispy markup around it (core/form_fields.py). `PlainWidgetRenderer` writes the
same markup from the same widget context (`Widget.get_context`) for the input, select and textarea
templates; any other template (radio, file, multi-widgets, form and error templates) goes to Django's
templates as before. Forms opt in with `default_renderer = plain_widgets`.
"""
from __future__ import annotations

import html

from django.forms.renderers import DjangoTemplates
from django.utils.functional import Promise

_INPUT = "django/forms/widgets/input.html"
_INPUTS = {f"django/forms/widgets/{name}.html" for name in (
    "input", "text", "email", "number", "password", "url", "hidden", "checkbox", "date", "datetime", "time", "search",
    "tel", "color")}
_SELECT = "django/forms/widgets/select.html"
_OPTION = "django/forms/widgets/select_option.html"
_TEXTAREA = "django/forms/widgets/textarea.html"


def escape(value) -> str:
    """`{{ value }}` / `{{ value|stringformat:'s' }}` in a Django template: conditional_escape of str(value),
    without building a SafeString per call."""
    if isinstance(value, Promise):
        value = str(value)
    if hasattr(value, "__html__"):
        return value.__html__()
    return html.escape(str(value))


def attrs_html(attrs: dict) -> str:
    """django/forms/widgets/attrs.html."""
    return "".join(f" {escape(name)}" if value is True else f' {escape(name)}="{escape(value)}"'
                   for name, value in attrs.items() if value is not False)


def _input(widget: dict) -> str:
    value = widget["value"]
    value = "" if value is None else f' value="{escape(value)}"'
    return f'<input type="{escape(widget["type"])}" name="{escape(widget["name"])}"{value}{attrs_html(widget["attrs"])}>'


def _select(widget: dict) -> str | None:
    parts = [f'<select name="{escape(widget["name"])}"{attrs_html(widget["attrs"])}>']
    for group_name, group_choices, _index in widget["optgroups"]:
        if group_name:
            parts.append(f'\n  <optgroup label="{escape(group_name)}">')
        for option in group_choices:
            if option["template_name"] != _OPTION:
                return None
            parts.append(f'\n  <option value="{escape(option["value"])}"{attrs_html(option["attrs"])}>'
                         f'{escape(option["label"])}</option>\n')  # select_option.html's own newline
        if group_name:
            parts.append("\n  </optgroup>")
    parts.append("\n</select>")
    return "".join(parts)


def _textarea(widget: dict) -> str:
    value = widget["value"]
    return (f'<textarea name="{escape(widget["name"])}"{attrs_html(widget["attrs"])}>\n'
            f'{escape(value) if value else ""}</textarea>')


class PlainWidgetRenderer(DjangoTemplates):
    def render(self, template_name, context, request=None):
        widget = context.get("widget") if context else None
        if widget is not None:
            if template_name in _INPUTS:
                return _input(widget)
            if template_name == _TEXTAREA:
                return _textarea(widget)
            if template_name == _SELECT:
                markup = _select(widget)
                if markup is not None:
                    return markup
        return super().render(template_name, context, request)


# One instance: a renderer class given as a form's default_renderer would be instantiated (and build
# its template engine) per form.
plain_widgets = PlainWidgetRenderer()
