"""Form widgets for long choice lists.

Django renders every <option> of a Select through two template includes (`select_option.html` and
`attrs.html`), so the ~600 time zones of the Preferences page cost more than the rest of the page.
`LongSelect` writes the same markup with string formatting: no option dicts (`optgroups`), no
`format_html`/`flatatt` per option (the only option attribute a Select sets is `selected`).
"""
from django import forms
from django.forms.utils import flatatt
from django.utils.html import format_html
from django.utils.safestring import mark_safe

from core.form_renderer import escape as _escape


class LongSelect(forms.Select):
    def render(self, name, value, attrs=None, renderer=None):
        widget = forms.Widget.get_context(self, name, value, attrs)["widget"]  # without Django's option dicts
        if self.allow_multiple_selected:
            widget["attrs"]["multiple"] = True
        chosen = widget["value"]  # format_value(): the selected values as strings
        parts = [format_html('<select name="{}"{}>', widget["name"], flatatt(widget["attrs"]))]
        has_selected = False

        def option(option_value, label) -> str:
            nonlocal has_selected
            selected = (not has_selected or self.allow_multiple_selected) and str(option_value) in chosen
            has_selected |= selected
            return f'<option value="{_escape(str(option_value))}"{" selected" if selected else ""}>{_escape(label)}</option>'

        for option_value, label in self.choices:
            if option_value is None:
                option_value = ""
            if isinstance(label, (list, tuple)):  # an optgroup, as ChoiceWidget.optgroups reads it
                if option_value:
                    parts.append(f'<optgroup label="{_escape(option_value)}">')
                parts += [option(sub_value, sub_label) for sub_value, sub_label in label]
                if option_value:
                    parts.append("</optgroup>")
            else:
                parts.append(option(option_value, label))
        parts.append("</select>")
        return mark_safe("".join(parts))
