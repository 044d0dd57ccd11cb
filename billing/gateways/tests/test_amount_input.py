"""Amounts people type: "1e3" (and other exponent forms) is a form error, never 1000."""
import pytest

from accounts.forms import PlainDecimalField, PreferencesForm
from billing.gateways.forms import AutopayForm


@pytest.mark.parametrize("text", ["1e3", "1E3", "2e-1", "Infinity", "NaN", "1_000", "0x10"])
def test_plain_decimal_field_refuses_what_is_not_a_plain_number(text):
    field = PlainDecimalField(max_digits=20, decimal_places=3)
    with pytest.raises(Exception) as error:
        field.clean(text)
    assert "Enter a number." in str(error.value)


@pytest.mark.parametrize("text,expected", [("1000", "1000"), (" 12.50 ", "12.50"), ("-3", "-3"), (".5", "0.5"), ("7.", "7")])
def test_plain_decimal_field_keeps_ordinary_numbers(text, expected):
    from decimal import Decimal

    assert PlainDecimalField(max_digits=20, decimal_places=3).clean(text) == Decimal(expected)


@pytest.mark.django_db
def test_autopay_cap_and_low_balance_threshold_refuse_1e3(customer):
    autopay = AutopayForm({"enabled": "", "monthly_limit": "1e3"}, customer=customer)
    assert not autopay.is_valid() and "monthly_limit" in autopay.errors
    preferences = PreferencesForm({"low_balance_threshold": "1e3"}, account_currency="EUR")
    assert not preferences.is_valid() and "low_balance_threshold" in preferences.errors


def test_staff_amount_forms_refuse_1e3():
    from billing.admin import AdjustmentForm
    from portal.admin import BalanceAdjustForm, BankTransferActionForm

    for form_class in (AdjustmentForm, BalanceAdjustForm, BankTransferActionForm):
        field = form_class.base_fields["amount"]
        assert isinstance(field, PlainDecimalField), form_class
        with pytest.raises(Exception):
            field.clean("1e3")
