"""core.form_renderer writes exactly what Django's widget templates write (byte for byte)."""
import datetime
from decimal import Decimal

import pytest
from django import forms
from django.forms.renderers import DjangoTemplates
from django.utils.safestring import mark_safe

from core.form_renderer import plain_widgets


class SampleForm(forms.Form):
    name = forms.CharField(label="Name", max_length=20, widget=forms.TextInput(attrs={"placeholder": 'a "b" <c>'}))
    email = forms.EmailField(required=False)
    amount = forms.DecimalField(min_value=0, decimal_places=2)
    secret = forms.CharField(widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}))
    hidden = forms.CharField(widget=forms.HiddenInput, required=False)
    note = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 3}))
    agree = forms.BooleanField(required=False)
    day = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    plan = forms.ChoiceField(choices=[("a", "A & B"), ("b", mark_safe("<b>B</b>"))])
    grouped = forms.ChoiceField(choices=[("", "—"), ("Europe", [("nl", "NL"), ("de", "DE")]), ("x", "X")])
    many = forms.MultipleChoiceField(choices=[("1", "One"), ("2", "Two")], required=False)
    pick = forms.ChoiceField(choices=[("x", "X")], widget=forms.RadioSelect)  # Django's templates


@pytest.mark.parametrize("name", list(SampleForm.base_fields))
@pytest.mark.parametrize("data", [
    None,
    {"name": "O'Brien <x>", "amount": "1.5", "secret": "s", "hidden": "h&", "note": "<line>\nnext", "agree": "on",
     "day": "2027-01-02", "plan": "b", "grouped": "de", "many": ["1", "2"], "pick": "x"},
])
def test_plain_widgets_render_as_django_templates(name, data):
    initial = {"amount": Decimal("3.10"), "day": datetime.date(2027, 3, 4), "grouped": "nl"}
    ours = SampleForm(data, initial=initial, renderer=plain_widgets)[name]
    django = SampleForm(data, initial=initial, renderer=DjangoTemplates())[name]
    assert str(ours) == str(django)
