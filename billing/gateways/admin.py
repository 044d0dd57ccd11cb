
from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

from accounts.admin_mixins import BackOfficePermissions, ReadOnlyAdmin
from billing.models import Invoice

from . import services
from .base import GatewayError
from .models import (
    AutopayCharge, AutopaySettings, BankTransferReceipt, GatewayConfig, PaymentAttempt, SavedPaymentMethod,
    WebhookDelivery,
)
from .registry import all_gateways, get_gateway



class GatewayConfigForm(forms.ModelForm):
    code = forms.ChoiceField(label=_("Gateway"))

    class Meta:
        model = GatewayConfig
        fields = ["code", "enabled", "currencies", "countries", "excluded_countries", "position"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["code"].choices = [(g.code, f"{g.name} ({g.code})") for g in all_gateways()]

    def _codes(self, field: str, length: int) -> list[str]:
        codes = [code.strip().upper() for code in self.cleaned_data.get(field) or [] if code.strip()]
        for code in codes:
            if len(code) != length or not code.isalpha():
                raise ValidationError(_("%(code)s is not a valid code.") % {"code": code})
        return codes

    def clean_currencies(self):
        return self._codes("currencies", 3)

    def clean_countries(self):
        return self._codes("countries", 2)

    def clean_excluded_countries(self):
        return self._codes("excluded_countries", 2)


@admin.register(GatewayConfig)
class GatewayConfigAdmin(admin.ModelAdmin):
    form = GatewayConfigForm
    list_display = ["code", "gateway_name", "enabled", "configured", "currencies", "countries", "excluded_countries", "position"]
    list_editable = ["enabled", "position"]

    @admin.display(description=_("Name"))
    def gateway_name(self, obj):
        gateway = get_gateway(obj.code)
        return gateway.name if gateway else "?"

    @admin.display(description=_("Keys configured"), boolean=True)
    def configured(self, obj):
        gateway = get_gateway(obj.code)
        return bool(gateway and gateway.is_configured())


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(ReadOnlyAdmin):
    list_display = ["received_at", "gateway", "event_type", "event_id", "result", "http_status", "remote_ip"]
    list_filter = ["gateway", "result"]
    search_fields = ["event_id", "payload"]
    readonly_fields = [f.name for f in WebhookDelivery._meta.fields]


@admin.register(PaymentAttempt)
class PaymentAttemptAdmin(BackOfficePermissions, ReadOnlyAdmin):
    list_display = ["created_at", "customer", "invoice", "purpose", "gateway", "amount", "currency", "status", "refunded_amount"]
    list_filter = ["gateway", "status", "purpose"]
    search_fields = ["reference", "external_id", "transaction_id", "invoice__number", "customer__pk"]
    readonly_fields = [f.name for f in PaymentAttempt._meta.fields]
    actions = ["refund_in_full"]

    @admin.action(description=_("Refund to the card in full (through the gateway)"), permissions=["refund_payment"])
    def refund_in_full(self, request, queryset):
        for attempt in queryset:
            amount = attempt.amount - attempt.refunded_amount
            try:
                services.attempt_refund(attempt=attempt, amount=amount, actor=request.user)
            except GatewayError as exc:
                self.message_user(request, f"{attempt.reference}: {exc}", messages.ERROR)
            else:
                # The ledger side (balance or revenue and tax, credit note) is already recorded: nothing else to do.
                self.message_user(request, _("Refunded %(amount)s %(currency)s to the card and recorded it in the ledger "
                                             "(see the payment's refunds and credit notes).")
                                  % {"amount": amount, "currency": attempt.currency}, messages.SUCCESS)


@admin.register(SavedPaymentMethod)
class SavedPaymentMethodAdmin(ReadOnlyAdmin):
    list_display = ["customer", "gateway", "brand", "last4", "expiry", "is_default", "created_at"]
    list_filter = ["gateway"]
    readonly_fields = ["customer", "gateway", "kind", "brand", "last4", "exp_month", "exp_year", "is_default", "created_at"]
    exclude = ["token"]


@admin.register(AutopaySettings)
class AutopaySettingsAdmin(ReadOnlyAdmin):
    list_display = ["customer", "enabled", "method", "monthly_limit", "monthly_limit_currency", "updated_at"]


@admin.register(AutopayCharge)
class AutopayChargeAdmin(ReadOnlyAdmin):
    list_display = ["day", "customer", "amount", "currency", "status", "reason", "failure_message"]
    list_filter = ["status"]


class BankTransferForm(forms.ModelForm):
    invoice_number = forms.CharField(label=_("Invoice number (payment reference)"), max_length=20)

    class Meta:
        model = BankTransferReceipt
        fields = ["invoice_number", "amount", "bank_reference", "received_on"]

    def clean_invoice_number(self):
        number = self.cleaned_data["invoice_number"].strip()
        invoice = Invoice.objects.select_related("customer").filter(number=number).first()
        if invoice is None:
            raise ValidationError(_("No invoice with this number."))
        self.invoice = invoice
        return number


@admin.register(BankTransferReceipt)
class BankTransferReceiptAdmin(admin.ModelAdmin):
    """Staff record a received transfer here; saving calls payment_record (the bank reference is the key)."""

    form = BankTransferForm
    list_display = ["created_at", "invoice", "amount", "currency", "bank_reference", "received_on", "recorded_by"]
    search_fields = ["bank_reference", "invoice__number"]

    def has_change_permission(self, request, obj=None):
        return obj is None

    def has_delete_permission(self, request, obj=None):
        return False

    def get_form(self, request, obj=None, **kwargs):
        if obj is not None:
            kwargs["fields"] = []
        return super().get_form(request, obj, **kwargs)

    def get_readonly_fields(self, request, obj=None):
        return ["invoice", "amount", "currency", "bank_reference", "received_on", "recorded_by", "payment_id"] if obj else []

    def save_model(self, request, obj, form, change):
        from billing.services.errors import BillingError

        try:
            receipt = services.bank_transfer_record(
                invoice=form.invoice, amount=form.cleaned_data["amount"], bank_reference=form.cleaned_data["bank_reference"],
                received_on=form.cleaned_data["received_on"], actor=request.user,
            )
        except BillingError as exc:
            self.message_user(request, "; ".join(exc.messages), messages.ERROR)
            return
        obj.pk = receipt.pk
