from decimal import Decimal, InvalidOperation

from django import forms
from django.conf import settings
from django.utils.translation import gettext_lazy as _

from .money import fits_minor_units, format_money, minor_units
from .rates import RateError, RateTable, base_currency


def parse_amount(raw: str) -> Decimal:
    """Parse "1 234,50" / "1234.50"; raises ValidationError on anything else."""
    text = (raw or "").strip().replace(" ", "").replace("\u00a0", "").replace(",", ".")
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise forms.ValidationError(_("Enter a number, e.g. 100 or 99.50."), code="invalid")
    if not value.is_finite():
        raise forms.ValidationError(_("Enter a number, e.g. 100 or 99.50."), code="invalid")
    return value


class TopUpForm(forms.Form):
    amount = forms.CharField(label=_("Amount"), max_length=24, widget=forms.TextInput(attrs={"inputmode": "decimal", "autocomplete": "off"}))
    currency = forms.ChoiceField(label=_("Currency"))

    def __init__(self, *args, currencies, **kwargs):
        super().__init__(*args, **kwargs)
        self.currencies = currencies
        self.fields["currency"].choices = [(c.code, c.code) for c in currencies]

    def clean(self):
        data = super().clean()
        currency, raw = data.get("currency"), self.data.get("amount", "")
        if not currency or "amount" in self.errors:
            return data
        try:
            amount = parse_amount(raw)
        except forms.ValidationError as exc:
            self.add_error("amount", exc)
            return data
        if amount <= 0:
            self.add_error("amount", _("The amount must be greater than zero."))
            return data
        if not fits_minor_units(amount, currency):
            places = minor_units(currency)
            self.add_error("amount", _("%(code)s allows at most %(places)s decimal places.") % {"code": currency, "places": places}
                           if places else _("%(code)s amounts are whole numbers.") % {"code": currency})
            return data
        try:
            in_base = amount * RateTable(self.currencies).quote(currency, base_currency()).rate
        except RateError as exc:
            self.add_error("currency", exc.messages[0])
            return data
        low, high = settings.BILLING_TOPUP_MIN, settings.BILLING_TOPUP_MAX
        if in_base < low or in_base > high:
            self.add_error("amount", _("Top up between %(low)s and %(high)s (or the equivalent in another currency).")
                           % {"low": format_money(low, base_currency()), "high": format_money(high, base_currency())})
            return data
        data["amount"] = amount
        return data


class CurrencyChangeForm(forms.Form):
    currency = forms.ChoiceField(label=_("New account currency"))

    def __init__(self, *args, currencies, current, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["currency"].choices = [(c.code, c.code) for c in currencies if c.code != current]
