"""The list pages' fast paths give what the slow ones give: `link` = reverse(), cached labels =
Django's get_FOO_display(), memoised money = Babel's formatting."""
from decimal import Decimal

import pytest
from django.test import override_settings
from django.urls import reverse, set_script_prefix
from django.utils import translation

from billing.models import Invoice, Payment
from billing.money import format_money
from core.links import link_for, link_maker
from notifications.models import Notification
from orders.models import Order
from tickets.models import Ticket

NAMES = ["billing:invoice_detail", "billing:invoice_pdf", "billing:payment_detail", "billing:act_pdf", "billing:credit_note_pdf",
         "billing:contract_acceptance_pdf", "orders:order_detail", "orders:order_renew", "orders:order_change_plan",
         "tickets:detail", "notifications:detail"]


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("pk", [1, 42, 918273645, 10**12])
def test_link_is_reverse(name, pk):
    assert link_for(name, pk) == reverse(name, args=[pk]) == link_maker(name)(pk)


@override_settings(FORCE_SCRIPT_NAME="/portal/")
def test_link_follows_the_script_prefix():
    set_script_prefix("/portal/")
    try:
        assert link_for("billing:invoice_detail", 7) == reverse("billing:invoice_detail", args=[7]) == "/portal/billing/invoices/7/"
        assert link_maker("billing:invoice_detail")(7) == "/portal/billing/invoices/7/"
    finally:
        set_script_prefix("/")
    assert link_for("billing:invoice_detail", 7) == link_maker("billing:invoice_detail")(7) == "/billing/invoices/7/"


@pytest.mark.parametrize("model,field", [(Invoice, "kind"), (Invoice, "status"), (Payment, "status"), (Order, "status"),
                                         (Ticket, "status"), (Ticket, "priority"), (Notification, "kind")])
@pytest.mark.parametrize("language", ["en", "ru"])
def test_cached_choice_labels_are_djangos(model, field, language):
    from django.db.models import Model

    choices = [value for value, _label in model._meta.get_field(field).flatchoices] + ["not-a-choice"]
    with translation.override(language):
        for value in choices:
            row = model(**{field: value})
            assert getattr(row, f"get_{field}_display")() == Model._get_FIELD_display(row, model._meta.get_field(field))


@pytest.mark.parametrize("amount,currency", [("1234.5", "EUR"), ("-0", "EUR"), ("0.00", "EUR"), ("1500", "JPY"),
                                             ("10.0000", "USD"), ("-12.3456", "RUB")])
def test_memoised_money_is_babels(amount, currency):
    from babel.numbers import format_currency

    from billing.money import quantize

    for language in ("en", "ru"):
        with translation.override(language):
            expected = format_currency(quantize(Decimal(amount) + 0, currency), currency, locale=translation.to_locale(language))
            assert format_money(Decimal(amount), currency) == expected
            assert format_money(Decimal(amount), currency) == expected  # the memoised answer


@pytest.mark.parametrize("value,attrs", [("", None), ("DE", {"class": "form-select", "id": "id_country"}),
                                         ("NL", {"disabled": True, "required": False}), ("<x>", {"data-x": "\"q\""})])
def test_long_select_writes_what_djangos_select_writes(value, attrs):
    from django import forms
    from django.test.html import parse_html

    from accounts.forms import country_choices
    from core.widgets import LongSelect

    choices = country_choices() + [("Europe", [("Europe/Berlin", "Berlin & <Co>"), ("Europe/Paris", "Paris")])]
    fast = LongSelect(choices=choices).render("country", value, attrs)
    slow = forms.Select(choices=choices).render("country", value, attrs)
    assert parse_html(fast) == parse_html(slow)


def test_long_select_matches_djangos_select_with_lazy_safe_and_empty_choices():
    from django import forms
    from django.test.html import parse_html
    from django.utils.safestring import mark_safe
    from django.utils.translation import gettext_lazy

    from core.widgets import LongSelect

    choices = [(None, gettext_lazy("Country")), ("a", mark_safe("<b>A</b>")), ("b", "B & b"), ("a", "A again"),
               ("", [("x", "X")])]  # a group without a name: its options without <optgroup>
    for value in (None, "a", "b", "x"):
        fast = LongSelect(choices=choices).render("f", value, {"id": "id_f"})
        assert parse_html(fast) == parse_html(forms.Select(choices=choices).render("f", value, {"id": "id_f"}))
        assert fast.count(" selected") == 1  # None selects the empty option, as Django does; "a" only its first
