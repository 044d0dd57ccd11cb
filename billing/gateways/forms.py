from decimal import Decimal

from django import forms
from django.utils.translation import gettext_lazy as _

from accounts.forms import PlainDecimalField
from billing.money import fits_minor_units

from .models import SavedPaymentMethod

MAX_MONTHLY_LIMIT = Decimal("1000000")


class PayInvoiceForm(forms.Form):
    gateway = forms.ChoiceField(label=_("Payment method"), widget=forms.RadioSelect)
    use_balance = forms.BooleanField(label=_("Use my balance first"), required=False)
    save_method = forms.BooleanField(label=_("Save this card for future payments and auto-payment"), required=False)

    def __init__(self, *args, gateways, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["gateway"].choices = [(gateway.code, gateway.name) for gateway in gateways]


class PaySavedMethodForm(forms.Form):
    """Pay an invoice with a card saved earlier (no redirect). Only the customer's own methods at
    gateways offered for the invoice are choices: anything else is "not a valid choice"."""

    saved_method = forms.ModelChoiceField(label=_("Saved card"), queryset=SavedPaymentMethod.objects.none(),
                                          widget=forms.RadioSelect, empty_label=None)
    use_balance = forms.BooleanField(label=_("Use my balance first"), required=False)

    def __init__(self, *args, methods, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["saved_method"].queryset = methods


class AddMethodForm(forms.Form):
    gateway = forms.ChoiceField(label=_("Payment system"))

    def __init__(self, *args, gateways, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["gateway"].choices = [(gateway.code, gateway.name) for gateway in gateways]


class AutopayForm(forms.Form):
    enabled = forms.BooleanField(label=_("Enable auto-payment"), required=False)
    method = forms.ModelChoiceField(label=_("Payment method"), queryset=SavedPaymentMethod.objects.none(), required=False,
                                    empty_label=_("Choose a saved card"))
    monthly_limit = PlainDecimalField(
        label=_("Maximum top-up per month"), min_value=Decimal("0"), max_value=MAX_MONTHLY_LIMIT, max_digits=20,
        decimal_places=3, help_text=_("Auto-payment never charges more than this in one calendar month."),
    )

    def __init__(self, *args, customer, **kwargs):
        super().__init__(*args, **kwargs)
        self.customer = customer
        self.fields["method"].queryset = SavedPaymentMethod.objects.filter(customer=customer)
        self.fields["monthly_limit"].label = _("Maximum top-up per month, %(currency)s") % {"currency": customer.currency}

    def clean_monthly_limit(self):
        value = self.cleaned_data["monthly_limit"]
        if not fits_minor_units(value, self.customer.currency):
            raise forms.ValidationError(_("Too many decimal places for %(currency)s.") % {"currency": self.customer.currency})
        return value

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("enabled"):
            if not cleaned.get("method"):
                self.add_error("method", _("Choose a saved payment method."))
            if cleaned.get("monthly_limit") is not None and cleaned["monthly_limit"] <= 0:
                self.add_error("monthly_limit", _("Set a maximum above zero."))
        return cleaned


class SandboxCardForm(forms.Form):
    number = forms.CharField(label=_("Card number"), max_length=23)
    expiry = forms.RegexField(label=_("Expiry (MM/YY)"), regex=r"^\s*(0[1-9]|1[0-2])\s*/\s*(\d{2})\s*$", max_length=7,
                              error_messages={"invalid": _("Use the MM/YY format.")})
    cvc = forms.RegexField(label=_("CVC"), regex=r"^\d{3,4}$", max_length=4, error_messages={"invalid": _("3 or 4 digits.")})
    save_card = forms.BooleanField(label=_("Save this card with the merchant"), required=False)

    def expiry_parts(self) -> tuple[int, int]:
        month, year = self.cleaned_data["expiry"].replace(" ", "").split("/")
        return int(month), 2000 + int(year)
