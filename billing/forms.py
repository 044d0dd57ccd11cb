from decimal import Decimal, InvalidOperation

from django import forms
from django.conf import settings
from django.utils.translation import gettext_lazy as _

from accounts.forms import PLAIN_NUMBER_RE
from core.widgets import LongSelect

from .money import fits_minor_units, format_money, minor_units
from .rates import RateError, RateTable, base_currency


def parse_amount(raw: str) -> Decimal:
    """Parse "1 234,50" / "1234.50"; raises ValidationError on anything else."""
    text = (raw or "").strip().replace(" ", "").replace("\u00a0", "").replace(",", ".")
    if not PLAIN_NUMBER_RE.match(text):  # "1e3", "Infinity": Decimal() takes them, people don't mean them
        raise forms.ValidationError(_("Enter a number, e.g. 100 or 99.50."), code="invalid")
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
    # One invoice per rendered form: a double click or a resubmitted POST returns the first invoice.
    request_key = forms.CharField(widget=forms.HiddenInput, required=False, max_length=64)

    def __init__(self, *args, currencies, **kwargs):
        super().__init__(*args, **kwargs)
        self.currencies = currencies
        self.fields["currency"].choices = [(c.code, c.code) for c in currencies]

    def clean_request_key(self) -> str:
        key = self.cleaned_data["request_key"]
        if key and not key.replace("-", "").isalnum():
            raise forms.ValidationError(_("Invalid form token; reload the page."))
        return key

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


class PayerForm(forms.Form):
    """A payer's details; the company fields are required for a company."""

    payer_type = forms.ChoiceField(label=_("Payer type"), widget=forms.RadioSelect)
    name = forms.CharField(label=_("Full name"), max_length=255, required=False,
                           help_text=_("For a company: the contact person (optional)."))
    company_name = forms.CharField(label=_("Company name"), max_length=255, required=False)
    registration_number = forms.CharField(label=_("Registration number"), max_length=64, required=False)
    vat_number = forms.CharField(label=_("VAT number"), max_length=64, required=False,
                                 help_text=_("With the country prefix, e.g. DE123456789. Leave empty if you have none."))
    street = forms.CharField(label=_("Address"), max_length=255)
    city = forms.CharField(label=_("City"), max_length=120)
    postcode = forms.CharField(label=_("Postcode"), max_length=20, required=False)
    country = forms.ChoiceField(label=_("Country"), widget=LongSelect)
    email = forms.EmailField(label=_("Email for documents"), max_length=254, required=False)

    COMPANY_REQUIRED = ("company_name", "registration_number")

    def __init__(self, *args, **kwargs):
        from accounts.forms import country_choices

        from .models import Payer

        super().__init__(*args, **kwargs)
        self.fields["payer_type"].choices = Payer.Type.choices
        self.fields["country"].choices = country_choices()

    def clean(self):
        from .models import Payer

        data = super().clean()
        for field in ("name", "company_name", "registration_number", "vat_number", "street", "city", "postcode"):
            if field in data:
                data[field] = " ".join(data[field].split())
        if data.get("payer_type") == Payer.Type.COMPANY:
            for field in self.COMPANY_REQUIRED:
                if not data.get(field):
                    self.add_error(field, _("Required for a company."))
            from . import vat as vat_numbers

            vat = data.get("vat_number", "").replace(" ", "").upper()
            if vat and (len(vat) < 4 or not vat[:2].isalpha() or not vat[2:].isalnum()):
                self.add_error("vat_number", _("Enter the VAT number with its country prefix, e.g. DE123456789."))
            elif vat:
                try:  # format and check digits (python-stdnum); VIES is asked when staff verify the company
                    vat = vat_numbers.vat_number_clean(vat)
                except ValueError:
                    self.add_error("vat_number", _("This is not a valid VAT number for its country (check the digits)."))
            data["vat_number"] = vat
        elif data.get("payer_type") == Payer.Type.PRIVATE and not data.get("name"):
            self.add_error("name", _("Enter the payer's full name."))
        return data


class InvoicePayerForm(forms.Form):
    payer = forms.TypedChoiceField(label=_("Payer"), coerce=int)

    def __init__(self, *args, payers, choices=None, **kwargs):
        """`choices`: invoice_payer_choices(payers), when the caller has them already."""
        super().__init__(*args, **kwargs)
        self.payers = {p.pk: p for p in payers}
        self.fields["payer"].choices = invoice_payer_choices(payers) if choices is None else choices
        self.fields["payer"].widget.attrs["class"] = "form-select"

    def clean_payer(self):
        return self.payers[self.cleaned_data["payer"]]


def invoice_payer_choices(payers) -> list[tuple[int, str]]:
    """The payer field's choices: each payer's id and label, in the active language."""
    from .selectors import payer_details

    return [(p.pk, _payer_choice_label(p, payer_details(p))) for p in payers]


def _payer_choice_label(payer, details) -> str:
    label = details.label or str(_("Profile"))
    if payer.is_profile:
        label = _("%(name)s (from profile)") % {"name": label}
    if details.is_company and not details.is_verified_company:
        label = _("%(name)s — awaiting verification") % {"name": label} if details.verification_status != "rejected" \
            else _("%(name)s — verification rejected") % {"name": label}
    return label


class DocumentFilterForm(forms.Form):
    TYPE_CHOICES = [("", _("All documents")), ("invoice", _("Invoices")), ("credit_note", _("Credit notes")), ("act", _("Acts")), ("contract", _("Contracts"))]

    type = forms.ChoiceField(label=_("Type"), choices=TYPE_CHOICES, required=False)
    date_from = forms.DateField(label=_("From month"), required=False, input_formats=["%Y-%m"],
                                widget=forms.DateInput(attrs={"type": "month"}, format="%Y-%m"))
    date_to = forms.DateField(label=_("To month"), required=False, input_formats=["%Y-%m"],
                              widget=forms.DateInput(attrs={"type": "month"}, format="%Y-%m"))

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["type"].widget.attrs["class"] = "form-select form-select-sm"
        for name in ("date_from", "date_to"):
            self.fields[name].widget.attrs["class"] = "form-control form-control-sm"

    def clean(self):
        data = super().clean()
        if data.get("date_from") and data.get("date_to") and data["date_from"] > data["date_to"]:
            self.add_error("date_to", _("The end of the period is before its start."))
        return data
