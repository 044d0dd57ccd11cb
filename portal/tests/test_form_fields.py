"""core.form_fields' `as_field` writes what crispy's `as_crispy_field` writes (as HTML, whitespace aside)."""
import pytest
from crispy_forms.helper import FormHelper
from crispy_forms.templatetags.crispy_forms_filters import as_crispy_field
from django import forms
from django.test.html import parse_html

from core.form_fields import as_field
from core.widgets import LongSelect


class SampleForm(forms.Form):
    error_css_class = "has-error"
    name = forms.CharField(label="Name & <co>", max_length=20)
    email = forms.EmailField(required=False, help_text="We write <b>here</b>.")
    note = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 3, "class": "tall"}))
    plan = forms.ChoiceField(choices=[("a", "A"), ("b", "B")])
    country = forms.ChoiceField(choices=[("NL", "Netherlands"), ("DE", "Germany")], widget=LongSelect)
    agree = forms.BooleanField(label="I agree")
    news = forms.BooleanField(required=False, help_text="Monthly.")
    unlabelled = forms.CharField(label="", required=False)
    pick = forms.ChoiceField(choices=[("x", "X")], widget=forms.RadioSelect)  # crispy renders these itself
    secret = forms.CharField(widget=forms.HiddenInput, required=False)


def _both(form, name):
    return str(as_field(form[name])), str(as_crispy_field(SampleForm(form.data or None, initial=form.initial, auto_id=form.auto_id)[name]))


@pytest.mark.parametrize("name", [f for f in SampleForm.base_fields])
@pytest.mark.parametrize("data", [None, {"name": "x" * 30, "plan": "z", "country": "DE", "news": "on"}])
def test_as_field_matches_crispy(name, data):
    form = SampleForm(data, initial={"country": "DE", "email": "a@b.c"})
    ours, crispys = _both(form, name)
    assert parse_html(ours) == parse_html(crispys)
    if data is None and name not in ("pick", "secret"):
        assert ours.startswith("<div") and not crispys.startswith("<div")  # written here, not by crispy's templates


def test_as_field_matches_crispy_without_ids_and_with_a_helper():
    form = SampleForm(auto_id=False)
    assert parse_html(str(as_field(form["name"]))) == parse_html(str(as_crispy_field(SampleForm(auto_id=False)["name"])))
    helped = SampleForm()
    helped.helper = FormHelper()
    helped.helper.label_class = "col-3"
    reference = SampleForm()
    reference.helper = FormHelper()
    reference.helper.label_class = "col-3"
    assert parse_html(str(as_field(helped["name"]))) == parse_html(str(as_crispy_field(reference["name"])))
    assert "col-3" in str(as_field(helped["name"]))


def test_spaced_fields_write_what_the_crispy_form_filter_writes():
    """as_field(spaced=True) field by field (the Jinja2 crispy_form macro) against `{{ form|crispy }}`, with
    whitespace collapsed as a browser does (crispy sets the label text off on its own lines)."""
    import re

    from crispy_forms.templatetags.crispy_forms_filters import as_crispy_form

    def collapsed(markup: str) -> str:
        return re.sub(r"\s+", " ", re.sub(r">\s+<", "><", markup)).strip()

    for data in (None, {"name": "x" * 30, "plan": "z", "country": "DE", "news": "on"}):
        form = SampleForm(data, initial={"country": "DE", "email": "a@b.c"})
        ours = "".join(str(as_field(field, spaced=True)) for field in form)
        crispys = str(as_crispy_form(SampleForm(data, initial={"country": "DE", "email": "a@b.c"})))
        assert collapsed(ours) == collapsed(crispys)


class ChoicesForm(forms.Form):
    error_css_class = "has-error"
    tier = forms.ChoiceField(label="Tier & <co>", choices=[("a", "A & B"), ("b", "B")], widget=forms.RadioSelect,
                             help_text="Pick <i>one</i>.")
    optional = forms.ChoiceField(choices=[("1", "One")], widget=forms.RadioSelect, required=False)
    grouped = forms.ChoiceField(choices=[("G", [("g1", "G1"), ("g2", "G2")]), ("x", "X")], widget=forms.RadioSelect)
    scopes = forms.MultipleChoiceField(choices=[("r", "Read"), ("w", "Write")], widget=forms.CheckboxSelectMultiple,
                                       required=False, help_text="Any.")
    unlabelled = forms.MultipleChoiceField(label="", choices=[(1, "One")], widget=forms.CheckboxSelectMultiple)


@pytest.mark.parametrize("name", list(ChoicesForm.base_fields))
@pytest.mark.parametrize("data", [None, {"tier": "b", "grouped": "g2", "scopes": ["r", "w"], "unlabelled": ["1"]},
                                  {"tier": "z"}])
def test_radio_and_multi_checkbox_fields_match_crispy(name, data):
    """Written here without errors (crispy's whitespace too: the text matches after collapsing it), crispy's with."""
    import re

    def collapsed(markup: str) -> str:
        return re.sub(r"\s+", " ", re.sub(r">\s+<", "><", markup)).strip()

    form = ChoicesForm(data, initial={"tier": "a", "scopes": ["w"]})
    ours = str(as_field(form[name]))
    crispys = str(as_crispy_field(ChoicesForm(data, initial={"tier": "a", "scopes": ["w"]})[name]))
    assert ours.startswith("<div") == (not form[name].errors) and not crispys.startswith("<div")  # whose markup
    assert parse_html(ours) == parse_html(crispys)
    assert collapsed(ours) == collapsed(crispys)
    assert collapsed(str(as_field(form[name], spaced=True))) == collapsed(crispys)


class FileForm(forms.Form):
    photo = forms.FileField(label="Photo & co", help_text="PNG, it's <b>small</b>.",
                            widget=forms.ClearableFileInput(attrs={"accept": "image/png", "class": "wide"}))
    plain = forms.FileField(required=False)


@pytest.mark.parametrize("name", list(FileForm.base_fields))
@pytest.mark.parametrize("data", [None, {}])
def test_file_fields_match_crispy(name, data):
    import re

    def collapsed(markup: str) -> str:
        return re.sub(r"\s+", " ", re.sub(r">\s+<", "><", markup)).strip()

    form = FileForm(data, {} if data is not None else None)
    ours = str(as_field(form[name]))
    crispys = str(as_crispy_field(FileForm(data, {} if data is not None else None)[name]))
    assert ours.startswith("<div") == (not form[name].errors) and not crispys.startswith("<div")  # whose markup
    assert parse_html(ours) == parse_html(crispys)
    assert collapsed(ours) == collapsed(crispys)
