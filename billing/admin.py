"""Staff back office. Ledger rows and payments are read-only (corrections are new transactions through
services); invoices, currencies, rates and tax rates are managed here, and every action calls a service."""

import uuid

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db.models import Count
from django.contrib.admin import helpers
from django.shortcuts import redirect, render
from django.urls import path
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from accounts.admin_mixins import BackOfficePermissions, ReadOnlyAdmin, ReadOnlyInline
from accounts.forms import PlainDecimalField
from accounts.models import Customer

from .models import (
    Act, ActLine, ContractAcceptance, ContractVersion, CreditNote, Currency, Invoice, InvoiceLine, LedgerAccount, LedgerEntry,
    LedgerTransaction, Payer, Payment, PaymentRefund, RateRefreshError, RateSnapshot, TaxRate,
)
from .services.contracts import contract_version_publish
from .services.corrections import balance_adjust, credit_note_issue
from .services.invoices import invoice_cancel, invoice_pay_from_balance
from .services.payers import payer_country_approve, payer_reject, payer_verify
from .services.rates import currency_fixed_rate_set, rates_refresh_ecb


@admin.display(description=_("Client ID"), ordering="customer_id")
def client_id(obj) -> int | None:
    """The customer column of list pages: the Client ID (Customer.__str__ would query the owner per row)."""
    return obj.customer_id



class LedgerEntryInline(ReadOnlyInline, admin.TabularInline):
    model = LedgerEntry
    fields = ("account", "amount", "currency", "balance_after")

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("account")


class AdjustmentForm(forms.Form):
    customer_id = forms.IntegerField(label=_("Client ID"))
    amount = PlainDecimalField(label=_("Amount (negative to debit)"), max_digits=20, decimal_places=4)
    reason = forms.CharField(label=_("Reason"), max_length=200)


@admin.register(LedgerAccount)
class LedgerAccountAdmin(ReadOnlyAdmin):
    list_display = ("code", "kind", client_id, "currency", "balance", "credit_limit")
    list_filter = ("kind", "currency")
    search_fields = ("code", "customer__id")
    change_list_template = "admin/billing/ledgeraccount/change_list.html"

    def get_urls(self):
        return [path("adjust/", self.admin_site.admin_view(self.adjust_view), name="billing_balance_adjust")] + super().get_urls()

    def adjust_view(self, request):
        """Manual credit/debit with a reason: a ledger transaction against the adjustments account."""
        if not request.user.has_perm("billing.view_ledgeraccount"):
            return redirect("admin:index")
        form = AdjustmentForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            customer = Customer.objects.filter(pk=form.cleaned_data["customer_id"]).first()
            if customer is None:
                form.add_error("customer_id", _("No such client."))
            else:
                try:
                    balance_adjust(customer=customer, amount=form.cleaned_data["amount"],
                                   reason=form.cleaned_data["reason"], actor=request.user,
                                   idempotency_key=f"adjustment:{request.POST.get('nonce', '')}" if request.POST.get("nonce") else None)
                except ValidationError as exc:
                    form.add_error(None, exc.messages[0])
                else:
                    messages.success(request, _("Balance adjusted."))
                    return redirect("admin:billing_ledgeraccount_changelist")
        return render(request, "admin/billing/adjust.html", {**self.admin_site.each_context(request), "form": form,
                                                             "nonce": uuid.uuid4().hex, "title": _("Adjust a balance")})


@admin.register(LedgerTransaction)
class LedgerTransactionAdmin(ReadOnlyAdmin):
    list_display = ("pk", "created_at", "kind", "memo", "invoice", "payment", "rate", "created_by")
    list_select_related = ("invoice", "payment", "created_by")
    list_filter = ("kind",)
    search_fields = ("idempotency_key", "memo", "invoice__number", "reference")
    inlines = [LedgerEntryInline]

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(Payment)
class PaymentAdmin(ReadOnlyAdmin):
    list_display = ("pk", "created_at", client_id, "method", "amount", "currency", "status", "refunded_amount", "invoice",
                    "external_id", "rate_stale")
    list_select_related = ("invoice",)
    # "Converted at a stale rate": captured money recorded at the last known rate, for staff to review.
    list_filter = ("status", "method", "currency", "rate_stale")
    search_fields = ("idempotency_key", "external_id", "customer__id", "invoice__number")


@admin.register(PaymentRefund)
class PaymentRefundAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "idempotency_key", "payment", "amount", "currency", "invoice_part", "balance_part", "status",
                    "external_id", "credit_note", "created_by")
    list_select_related = ("payment", "credit_note", "created_by")
    list_filter = ("status", "currency")
    search_fields = ("idempotency_key", "external_id", "payment__customer__id")


class InvoiceLineInline(ReadOnlyInline, admin.TabularInline):
    model = InvoiceLine
    fields = ("description", "quantity", "unit_price", "amount", "reference")


class CreditNoteInline(ReadOnlyInline, admin.TabularInline):
    model = CreditNote
    fields = ("number", "amount", "tax_amount", "currency", "reason", "created_at", "created_by")


@admin.register(Invoice)
class InvoiceAdmin(BackOfficePermissions, admin.ModelAdmin):
    list_display = ("number", "issued_at", client_id, "kind", "total", "amount_paid", "currency", "status")
    list_filter = ("status", "kind", "currency")
    search_fields = ("number", "customer__id", "payer_name", "payer_company", "reference")
    readonly_fields = [f.name for f in Invoice._meta.fields]
    inlines = [InvoiceLineInline, CreditNoteInline]
    actions = ["cancel_invoices", "pay_from_balance", "refund_to_balance"]

    def has_add_permission(self, request):
        return False  # invoices are issued by services (orders, top-ups)

    def has_delete_permission(self, request, obj=None):
        return False

    def _run(self, request, queryset, action, done):
        ok = 0
        for invoice in queryset.order_by("pk"):
            try:
                if action(invoice) is not False:
                    ok += 1
            except ValidationError as exc:
                self.message_user(request, f"{invoice.number}: {exc.messages[0]}", messages.ERROR)
        if ok:
            self.message_user(request, done % {"count": ok}, messages.SUCCESS)

    @admin.action(description=_("Cancel selected unpaid invoices"), permissions=["manage_invoices"])
    def cancel_invoices(self, request, queryset):
        self._run(request, queryset, lambda inv: invoice_cancel(invoice=inv, reason=str(_("Cancelled by staff")), actor=request.user),
                  _("%(count)s invoice(s) cancelled."))

    @admin.action(description=_("Pay selected invoices from the customer's balance"), permissions=["manage_invoices"])
    def pay_from_balance(self, request, queryset):
        self._run(request, queryset, lambda inv: invoice_pay_from_balance(invoice=inv, actor=request.user),
                  _("%(count)s invoice(s) paid from balance."))

    @admin.action(description=_("Refund selected paid invoices to the balance (credit note)"), permissions=["refund_payment"])
    def refund_to_balance(self, request, queryset):
        self._run(request, queryset, lambda inv: credit_note_issue(invoice=inv, reason=str(_("Refund by staff")), actor=request.user),
                  _("%(count)s invoice(s) refunded to the balance."))


@admin.register(CreditNote)
class CreditNoteAdmin(ReadOnlyAdmin):
    list_display = ("number", "created_at", "invoice", client_id, "amount", "currency", "reason", "created_by")
    list_select_related = ("invoice", "created_by")
    search_fields = ("number", "invoice__number", "customer__id")


class CurrencyAdminForm(forms.ModelForm):
    class Meta:
        model = Currency
        fields = ("code", "enabled", "position", "rate_source", "rate")

    def clean_code(self):
        from babel.numbers import get_currency_name

        code = self.cleaned_data["code"].upper()
        if len(code) != 3 or get_currency_name(code, locale="en") == code:
            raise ValidationError(_("Enter an ISO 4217 currency code."))
        return code

    def clean(self):
        data = super().clean()
        if data.get("rate_source") == Currency.RateSource.FIXED and not data.get("rate"):
            self.add_error("rate", _("A fixed rate needs a value."))
        return data


@admin.register(Currency)
class CurrencyAdmin(admin.ModelAdmin):
    form = CurrencyAdminForm
    list_display = ("code", "enabled", "rate_source", "rate", "rate_updated_at", "rate_feed_date", "is_stale")
    list_editable = ("enabled",)
    readonly_fields = ("rate_updated_at", "rate_feed_date")
    actions = ["refresh_from_ecb"]

    @admin.display(boolean=True, description=_("stale"))
    def is_stale(self, obj):
        from .rates import is_stale

        return is_stale(obj)

    def get_readonly_fields(self, request, obj=None):
        return self.readonly_fields + (("code",) if obj else ())

    def save_model(self, request, obj, form, change):
        fixed_rate = obj.rate if obj.rate_source == Currency.RateSource.FIXED else None
        if not change:
            obj.rate = None if fixed_rate else obj.rate
            obj.save()
        else:
            Currency.objects.filter(pk=obj.pk).update(enabled=obj.enabled, position=obj.position, rate_source=obj.rate_source)
        previous = form.initial.get("rate")
        if fixed_rate and (not change or "rate" in form.changed_data or "rate_source" in form.changed_data or previous != fixed_rate):
            currency_fixed_rate_set(code=obj.code, rate=fixed_rate, actor=request.user)

    def has_delete_permission(self, request, obj=None):
        return False  # disable instead: amounts and history refer to the code

    @admin.action(description=_("Refresh rates from the ECB now"), permissions=["change"])
    def refresh_from_ecb(self, request, queryset):
        updated = rates_refresh_ecb()
        if updated:
            self.message_user(request, _("%(count)s rate(s) updated.") % {"count": updated}, messages.SUCCESS)
        else:
            error = RateRefreshError.objects.first()
            self.message_user(request, _("Refresh failed: %(error)s") % {"error": error.message if error else "-"}, messages.ERROR)


@admin.register(RateSnapshot)
class RateSnapshotAdmin(ReadOnlyAdmin):
    list_display = ("fetched_at", "currency", "value", "base_currency", "source", "feed_date", "created_by")
    list_select_related = ("created_by",)
    list_filter = ("source", "currency")


@admin.register(RateRefreshError)
class RateRefreshErrorAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "source", "message", "url")
    list_filter = ("source",)


@admin.register(TaxRate)
class TaxRateAdmin(admin.ModelAdmin):
    list_display = ("country", "profile_type", "percent", "label", "reverse_charge")
    list_filter = ("profile_type", "reverse_charge")
    search_fields = ("country",)


class PayerRejectForm(forms.Form):
    reason = forms.CharField(label=_("Reason (shown to the customer)"), max_length=255, widget=forms.Textarea(attrs={"rows": 3}))


@admin.register(Payer)
class PayerAdmin(BackOfficePermissions, admin.ModelAdmin):
    """Customers edit their payers; staff only verify or reject companies (audited services)."""

    list_display = ("pk", client_id, "label_column", "payer_type", "country", "country_approved_at", "vat_number",
                    "verification_status", "archived_at")
    list_filter = ("verification_status", "payer_type", "is_profile", "country")
    search_fields = ("=customer__id", "company_name", "name", "registration_number", "vat_number")
    readonly_fields = [f.name for f in Payer._meta.fields]
    actions = ["verify_payers", "reject_payers", "approve_payer_countries"]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description=_("payer"))
    def label_column(self, obj: Payer) -> str:
        return obj.company_name or obj.name or gettext("(from the profile)")

    def _each(self, request, queryset, action):
        done = 0
        for payer in queryset.order_by("pk"):
            try:
                action(payer)
                done += 1
            except ValidationError as exc:
                self.message_user(request, f"#{payer.pk}: {exc.messages[0]}", messages.WARNING)
        return done

    @admin.action(description=_("Verify selected company payers"), permissions=["verify_company"])
    def verify_payers(self, request, queryset):
        done = self._each(request, queryset, lambda p: payer_verify(payer=p, staff=request.user))
        if done:
            self.message_user(request, gettext("%(n)d payer(s) verified.") % {"n": done}, messages.SUCCESS)

    @admin.action(description=_("Approve the country of selected payers for tax (evidence seen)"), permissions=["change"])
    def approve_payer_countries(self, request, queryset):
        done = self._each(request, queryset, lambda p: payer_country_approve(payer=p, staff=request.user))
        if done:
            self.message_user(request, gettext("%(n)d payer country(ies) approved.") % {"n": done}, messages.SUCCESS)

    @admin.action(description=_("Reject selected company payers (with a reason)"), permissions=["verify_company"])
    def reject_payers(self, request, queryset):
        form = PayerRejectForm(request.POST if "apply" in request.POST else None)
        if form.is_bound and form.is_valid():
            done = self._each(request, queryset, lambda p: payer_reject(payer=p, staff=request.user,
                                                                        reason=form.cleaned_data["reason"]))
            if done:
                self.message_user(request, gettext("%(n)d payer(s) rejected.") % {"n": done}, messages.SUCCESS)
            return None
        return render(request, "admin/billing/payer/reject.html", {
            **self.admin_site.each_context(request), "title": gettext("Reject company payers"), "form": form,
            "queryset": queryset, "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME, "opts": self.model._meta,
        })


class ActLineInline(ReadOnlyInline, admin.TabularInline):
    model = ActLine
    fields = ("invoice", "description", "date", "subtotal", "tax_amount", "total")

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("invoice")


@admin.register(Act)
class ActAdmin(ReadOnlyAdmin):
    list_display = ("number", "period", client_id, "payer_company", "payer_name", "total", "currency", "created_at")
    list_filter = ("currency", "period")
    search_fields = ("number", "=customer__id", "payer_company", "payer_name")
    inlines = [ActLineInline]


class ContractVersionForm(forms.ModelForm):
    class Meta:
        model = ContractVersion
        fields = ("version", "title", "text")


@admin.register(ContractVersion)
class ContractVersionAdmin(admin.ModelAdmin):
    """Drafts are edited freely; publishing freezes the text (customers accept exactly that version)."""

    form = ContractVersionForm
    list_display = ("version", "title", "published_at", "acceptance_count")
    actions = ["publish"]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(acceptance_total=Count("acceptances"))

    @admin.display(description=_("acceptances"), ordering="acceptance_total")
    def acceptance_count(self, obj):
        return obj.acceptance_total

    def get_changeform_initial_data(self, request):
        last = ContractVersion.objects.order_by("-version").first()
        return {"version": (last.version + 1) if last else 1, "title": last.title if last else gettext("Customer agreement"),
                "text": last.text if last else ""}

    def get_readonly_fields(self, request, obj=None):
        return ("version", "title", "text", "published_at") if obj and obj.published_at else ("published_at",)

    def has_delete_permission(self, request, obj=None):
        return super().has_delete_permission(request, obj) and (obj is None or obj.published_at is None)

    @admin.action(description=_("Publish selected versions"), permissions=["change"])
    def publish(self, request, queryset):
        for version in queryset.order_by("version"):
            contract_version_publish(version=version, staff=request.user)
        self.message_user(request, gettext("Published. Customers are asked to accept the newest version."), messages.SUCCESS)


@admin.register(ContractAcceptance)
class ContractAcceptanceAdmin(ReadOnlyAdmin):
    list_display = ("accepted_at", client_id, "payer_label", "version", "ip", "user")
    list_select_related = ("version", "user")
    list_filter = ("version",)
    search_fields = ("=customer__id", "payer_label", "ip")
