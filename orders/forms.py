from decimal import Decimal, InvalidOperation

from django import forms
from django.utils.translation import gettext_lazy as _

from .models import PERIOD_CHOICES, Plan
from .order_fields import ORDER_FIELDS
from .services.renewing import MAX_RENEW_PERIODS


class OrderForm(forms.Form):
    """Period plus the order-form fields of the plan's product type; `options()` is what the order stores."""

    period_months = forms.TypedChoiceField(label=_("Billing period"), coerce=int)
    request_key = forms.CharField(widget=forms.HiddenInput, max_length=64, min_length=16)
    promo_code = forms.CharField(label=_("Promo code"), max_length=32, required=False)

    def __init__(self, *args, plan: Plan, **kwargs):
        super().__init__(*args, **kwargs)
        self.plan = plan
        periods = sorted({price.period_months for price in plan.prices.all()})
        labels = dict(PERIOD_CHOICES)
        self.fields["period_months"].choices = [(months, labels[months]) for months in periods]
        self.option_keys = [key for key in plan.product_type.order_fields if key in ORDER_FIELDS]
        for key in self.option_keys:
            self.fields[key] = ORDER_FIELDS[key](plan)

    def options(self) -> dict:
        """Human-readable values (OS and location names), as staff and the customer will see them."""
        data = self.cleaned_data
        options = {}
        for key in self.option_keys:
            value = data.get(key)
            if value in (None, ""):
                continue
            field = self.fields[key]
            if isinstance(field, forms.ChoiceField):
                value = str(dict(field.choices).get(value, value))
            options[key] = value
        return options

    def clean_promo_code(self) -> str:
        code = self.cleaned_data["promo_code"].strip().upper()
        if code and not code.replace("-", "").isalnum():
            raise forms.ValidationError(_("There is no such promo code."))
        return code

    def add_service_error(self, error) -> None:
        """A promo-code refusal belongs to its field; anything else to the form."""
        codes = {getattr(item, "code", None) for item in getattr(error, "error_list", [error])}
        self.add_error("promo_code" if any(str(code).startswith("promo_") for code in codes) else None, error)

    def clean_request_key(self) -> str:
        key = self.cleaned_data["request_key"]
        if not key.replace("-", "").isalnum():
            raise forms.ValidationError(_("Invalid form token; reload the page."))
        return key


class RenewForm(forms.Form):
    periods = forms.IntegerField(label=_("Number of periods"), min_value=1, max_value=MAX_RENEW_PERIODS, initial=1)
    # The period this page offered to renew: a double click must not renew the period after it too.
    period = forms.IntegerField(widget=forms.HiddenInput, required=False, min_value=1)


class BatchRenewForm(RenewForm):
    orders = forms.CharField(required=False)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.order_ids: list[int] = []

    def clean(self):
        data = super().clean()
        raw = self.data.getlist("orders") if hasattr(self.data, "getlist") else []
        try:
            self.order_ids = sorted({int(value) for value in raw})
        except (TypeError, ValueError):
            raise forms.ValidationError(_("Select services from the table."))
        if not self.order_ids:
            raise forms.ValidationError(_("Select at least one service to renew."))
        if len(self.order_ids) > 100:
            raise forms.ValidationError(_("Renew at most 100 services at once."))
        return data


class CancelForm(forms.Form):
    WHEN_CHOICES = [("period_end", _("At the end of the paid period")), ("now", _("Immediately"))]
    when = forms.ChoiceField(label=_("When"), choices=WHEN_CHOICES, widget=forms.RadioSelect, initial="period_end")
    confirm = forms.BooleanField(label=_("I understand that unused time is not refunded automatically."))


class AutoRenewForm(forms.Form):
    CHOICES = [("default", _("Account default")), ("on", _("On")), ("off", _("Off"))]
    auto_renew = forms.ChoiceField(choices=CHOICES)

    def value(self) -> bool | None:
        return {"default": None, "on": True, "off": False}[self.cleaned_data["auto_renew"]]


class ChangePlanForm(forms.Form):
    plan = forms.ModelChoiceField(queryset=Plan.objects.none(), label=_("New plan"))
    expected_amount = forms.CharField(required=False, widget=forms.HiddenInput)

    def __init__(self, *args, plans, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["plan"].queryset = plans

    def clean_expected_amount(self) -> Decimal | None:
        raw = self.cleaned_data.get("expected_amount", "").strip()
        if not raw:
            return None
        try:
            amount = Decimal(raw)
        except InvalidOperation:
            raise forms.ValidationError(_("Invalid amount."))
        if not amount.is_finite():  # NaN, sNaN (which raises when compared), Infinity
            raise forms.ValidationError(_("Invalid amount."))
        return amount
