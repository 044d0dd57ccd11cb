"""{% load form_fields %} — `{{ form.email|as_field }}`: crispy-forms' Bootstrap 5 field markup
(`{{ field|as_crispy_field }}`) written in Python for the plain cases.

crispy renders every field through `bootstrap5/field.html` and three included templates; on the
Settings pages that was most of the request. A field without errors, on a form without a crispy
helper, with a text, select, textarea or checkbox widget gets the same elements, attributes and
classes from string formatting here, and so do radio and multi-checkbox fields without errors (with
crispy's whitespace: _choice_inputs_field) and file fields without a current file (_file_field);
anything else (errors, hidden fields, multi-widgets) is handed to crispy itself. Registered as a template library in
settings.TEMPLATES (core is not an app).
"""
from crispy_forms.templatetags.crispy_forms_filters import as_crispy_field, optgroups
from django import forms, template
from django.conf import settings
from django.templatetags.l10n import unlocalize
from django.utils.html import format_html
from django.utils.safestring import mark_safe

from core.form_renderer import attrs_html

register = template.Library()

_HANDED_TO_CRISPY = (forms.RadioSelect, forms.CheckboxSelectMultiple, forms.FileInput, forms.MultiWidget)
_ASTERISK = mark_safe('<span class="asteriskField">*</span>')
# Written here with crispy's whitespace (bootstrap5/layout/radio_checkbox_select.html), only these exact classes.
_CHOICE_INPUTS = (forms.RadioSelect, forms.CheckboxSelectMultiple)
_FILE_INPUTS = (forms.FileInput, forms.ClearableFileInput)  # without a current file (no "clear" checkbox)


def _widget_html(field, classes: str) -> str:
    """What crispy's `{% crispy_field field 'class' classes %}` does: the widget's class name and
    `classes` added to its class attribute, then the field rendered."""
    widget = field.field.widget
    class_name = widget.__class__.__name__.lower()
    class_name = getattr(settings, "CRISPY_CLASS_CONVERTERS", {}).get(class_name, class_name)
    css_class = widget.attrs.get("class", "")
    if css_class:
        if css_class.find(class_name) == -1:
            css_class += f" {class_name}"
    else:
        css_class = class_name
    for name in classes.split():
        if name not in css_class.split():
            css_class += f" {name}"
    widget.attrs["class"] = css_class
    return str(field)


def _help_text(field) -> str:
    if not field.help_text:
        return ""
    element_id = format_html('id="{}_helptext" ', field.auto_id) if field.auto_id else ""
    return format_html('<div {}class="form-text">{}</div>', element_id, mark_safe(field.help_text))


def _choice_inputs_field(field) -> str:
    """crispy's field.html with radio_checkbox_select.html for a radio or multi-checkbox field without errors:
    a fieldset with the label as legend, one form-check per option (crispy's `optgroups` filter's options), the
    help text. Whitespace as crispy writes it where it separates words or attributes."""
    required = field.field.required
    extra_classes = f" {field.css_classes()}" if field.css_classes() else ""
    parts = [format_html('<div id="div_{}" class="mb-3{}">', field.auto_id, extra_classes)]
    if field.label:
        described = field.aria_describedby if field.use_fieldset else ""
        label_for = format_html('for="{}" ', field.id_for_label) if field.id_for_label else ""
        parts.append(format_html(
            '{}<{} {}class="form-label{}{}">\n{}{}\n</{}>',
            format_html('<fieldset{}>', format_html(' aria-describedby="{}"', described) if described else "")
            if field.use_fieldset else "", "legend" if field.use_fieldset else "label", label_for,
            " requiredField" if required else "", " fs-6" if field.use_fieldset else "", field.label,
            _ASTERISK if required else "", "legend" if field.use_fieldset else "label"))
    parts.append("<div >")
    for group, options, _index in optgroups(field):
        if group:
            parts.append(format_html("<strong>{}</strong>", group))
        for option in options:
            parts.append(format_html(
                '<div class="form-check"><input type="{}" class="form-check-input"  name="{}" value="{}" {}>'
                '<label for="{}" class="form-check-label">\n{}\n</label></div>',
                option["type"], field.html_name, unlocalize(option["value"]), mark_safe(attrs_html(option["attrs"])),
                option["attrs"].get("id", ""), unlocalize(option["label"])))
    parts.append("</div>")
    parts.append(_help_text(field))
    if field.use_fieldset and field.label:
        parts.append("</fieldset>")
    parts.append("</div>")
    return mark_safe("".join(parts))


def _file_field(field) -> str:
    """crispy's field.html with layout/field_file.html for a file field without errors or a current file."""
    required = field.field.required
    extra_classes = f" {field.css_classes()}" if field.css_classes() else ""
    parts = [format_html('<div id="div_{}" class="mb-3{}">', field.auto_id, extra_classes)]
    if field.label:
        label_for = format_html('for="{}" ', field.id_for_label) if field.id_for_label else ""
        parts.append(format_html('<label {}class="form-label{}">\n{}{}\n</label>', label_for,
                                 " requiredField" if required else "", field.label, _ASTERISK if required else ""))
    for subwidget in field.subwidgets:
        data = subwidget.data
        css_class = data["attrs"].get("class")
        parts.append(format_html(
            '<div>\n<input type="{}" name="{}" class="form-control{}"{}{}>\n{}\n</div>',
            data["type"], data["name"], f" {css_class}" if css_class else "",
            " disabled" if field.field.disabled else "", mark_safe(attrs_html({name: value for name, value in data["attrs"].items() if name != "class"})),
            _help_text(field)))
    parts.append("</div>")
    return mark_safe("".join(parts))


@register.filter
def as_field(field, spaced=False):
    """`spaced`: the label text set off by spaces as crispy's field template writes it on its own lines (what
    `{{ form|crispy }}` prints, so a Jinja2 body that writes a crispy form field by field prints the same text)."""
    widget = field.field.widget
    plain = getattr(field.form, "helper", None) is None and not field.is_hidden and not field.errors
    if plain and type(widget) in _CHOICE_INPUTS:
        return _choice_inputs_field(field)
    if plain and type(widget) in _FILE_INPUTS and not any(sub.data.get("is_initial") for sub in field.subwidgets):
        return _file_field(field)
    if (not plain or field.use_fieldset or isinstance(widget, _HANDED_TO_CRISPY) or hasattr(widget, "widget")):
        return as_crispy_field(field)
    required = field.field.required
    extra_classes = f" {field.css_classes()}" if field.css_classes() else ""
    if isinstance(widget, forms.CheckboxInput):
        return format_html(
            '<div class="mb-3"><div id="div_{}" class="form-check{}">{}'
            '<label for="{}" class="form-check-label{}">{}{}{}{}</label>{}</div></div>',
            field.auto_id, extra_classes, _widget_html(field, "form-check-input"), field.id_for_label,
            " requiredField" if required else "", " " if spaced else "", field.label, _ASTERISK if required else "",
            " " if spaced and not required else "", _help_text(field))
    label = ""
    if field.label:
        label_for = format_html(' for="{}"', field.id_for_label) if field.id_for_label else ""
        label = format_html('<label{} class="form-label{}">{}{}{}{}</label>', label_for,
                            " requiredField" if required else "", " " if spaced else "", field.label,
                            _ASTERISK if required else "", " " if spaced and not required else "")
    classes = "form-select" if isinstance(widget, forms.Select) else "form-control"
    return format_html('<div id="div_{}" class="mb-3{}">{}{}{}</div>', field.auto_id, extra_classes, label,
                       _widget_html(field, classes), _help_text(field))
