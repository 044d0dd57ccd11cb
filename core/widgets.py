"""Form widgets for long choice lists.

Django renders every <option> of a Select through two template includes (`select_option.html` and
`attrs.html`), so the ~600 time zones of the Preferences page cost more than the rest of the page.
`LongSelect` writes the same markup with one `format_html` per option.
"""
from django import forms
from django.forms.utils import flatatt
from django.utils.html import format_html
from django.utils.safestring import mark_safe


class LongSelect(forms.Select):
    def render(self, name, value, attrs=None, renderer=None):
        widget = self.get_context(name, value, attrs)["widget"]
        parts = [format_html('<select name="{}"{}>', widget["name"], flatatt(widget["attrs"]))]
        for group_name, options, _index in widget["optgroups"]:
            if group_name:
                parts.append(format_html('<optgroup label="{}">', group_name))
            parts += [format_html('<option value="{}"{}>{}</option>', str(option["value"]), flatatt(option["attrs"]), option["label"])
                      for option in options]
            if group_name:
                parts.append(mark_safe("</optgroup>"))
        parts.append(mark_safe("</select>"))
        return mark_safe("".join(parts))
