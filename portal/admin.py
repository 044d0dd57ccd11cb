"""The staff back office, composed on top of the apps' own admin classes.

Each app's admin.py registers its models with actions that call its services. This module (loaded
last: `portal` follows the domain apps in INSTALLED_APPS) re-registers the customer, invoice, order,
payment and outbox admins as subclasses that
- require a back-office permission (portal.models.BackOfficeAction) for every money, security and
  service-state action, so a staff user without it neither sees nor can post the action;
- add what a provider's staff need on one page: the customer's balance, orders, invoices, tickets
  and activity, crediting/debiting the balance and marking an invoice paid by bank transfer;
- add the Reports page (portal.models.StaffReport).
The portal is the top layer, so importing every app here keeps accounts free of billing/orders imports.
"""
import uuid
from datetime import datetime, time, timedelta
from decimal import Decimal

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin.views.main import ChangeList
from django.core.exceptions import PermissionDenied, ValidationError
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.text import format_lazy
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from accounts.admin import ActivityEventAdmin, CustomerAdmin, DeletionRequestAdmin
from accounts.admin_mixins import BackOfficePermissions, ReadOnlyAdmin, admin_action_form
from accounts.forms import PlainDecimalField
from accounts.models import ActivityEvent, Customer, DeletionRequest
from accounts.selectors import customer_owners
from billing.admin import CreditNoteAdmin, InvoiceAdmin, LedgerAccountAdmin, PaymentAdmin
from billing.gateways import services as gateway_services
from billing.gateways.admin import BankTransferReceiptAdmin, PaymentAttemptAdmin
from billing.gateways.models import BankTransferReceipt, PaymentAttempt
from billing.models import CreditNote, Invoice, LedgerAccount, Payment
from billing.money import format_money
from billing.selectors import balance_of
from billing.services.corrections import balance_adjust
from billing.services.settlement import DeletionSettlement, customer_settle_for_deletion
from notifications.admin import EmailOutboxAdmin
from notifications.models import EmailOutbox
from orders.admin import OrderAdmin, ProvisioningJobAdmin
from orders.models import Order, ProvisioningJob
from tickets.admin import TicketAdmin
from tickets.models import Ticket

from . import selectors, services
from .models import StaffReport


admin.site.site_header = admin.site.site_title = format_lazy("{} · {}", settings.PORTAL_NAME, _("Back office"))


class OwnerNamesChangeList(ChangeList):
    def get_results(self, request):
        super().get_results(request)
        path = self.model_admin.customer_path
        if path is None:
            customer_owners(customers=self.result_list)
        else:  # only customers the page already loaded (select_related); others are not printed
            descriptor = getattr(self.model, path)
            customer_owners(customers=[getattr(obj, path) for obj in self.result_list if descriptor.is_cached(obj)])


class CustomerNames:
    """List pages that print customers (row labels, the customer column) stay at a fixed query count."""

    customer_path: str | None = "customer"  # None: the rows are customers

    def get_changelist(self, request, **kwargs):
        return OwnerNamesChangeList


_action_form = admin_action_form


def _changelist_link(model, customer: Customer, count: int, label: str) -> str:
    url = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
    return format_html('<a href="{}?customer__id__exact={}">{} ({})</a>', url, customer.pk, label, count)


# --- customers -------------------------------------------------------------------------------------

class BalanceAdjustForm(forms.Form):
    amount = PlainDecimalField(label=_("Amount (negative to debit)"), max_digits=20, decimal_places=4)
    reason = forms.CharField(label=_("Reason"), max_length=200)
    nonce = forms.CharField(widget=forms.HiddenInput)  # a double submit posts the same key: one adjustment

    def clean_amount(self):
        amount = self.cleaned_data["amount"]
        if amount == 0:
            raise ValidationError(_("Enter a non-zero amount."))
        return amount


class CustomerBackOfficeAdmin(CustomerNames, CustomerAdmin):
    """accounts' CustomerAdmin plus balance, related records and permission-checked actions."""

    customer_path = None

    actions = [*CustomerAdmin.actions, "adjust_balance"]
    back_office_fields = ("balance", "related_records", "recent_activity")

    def get_readonly_fields(self, request, obj=None):
        # The account currency picks the ledger account: it changes only through billing's conversion,
        # which also converts the threshold (whose currency is therefore never edited by hand).
        account_currency = ("currency", "low_balance_threshold_currency") if obj is not None else ()
        return (*super().get_readonly_fields(request, obj), *account_currency, *self.back_office_fields)

    def get_fieldsets(self, request, obj=None):
        fieldsets = super().get_fieldsets(request, obj)
        if obj is None:
            return fieldsets
        rest = [(name, {**options, "fields": [f for f in options["fields"] if f not in self.back_office_fields]})
                for name, options in fieldsets]
        return [(_("Back office"), {"fields": self.back_office_fields}), *rest]

    @admin.display(description=_("balance"))
    def balance(self, obj: Customer) -> str:
        return format_money(balance_of(obj), obj.currency)

    @admin.display(description=_("records"))
    def related_records(self, obj: Customer) -> str:
        counts = {"orders": Order.objects.filter(customer=obj).count(),
                  "invoices": Invoice.objects.filter(customer=obj).count(),
                  "tickets": Ticket.objects.filter(customer=obj).count()}
        activity = ActivityEvent.objects.filter(customer=obj).count()
        links = [
            _changelist_link(Order, obj, counts["orders"], gettext("Orders")),
            _changelist_link(Invoice, obj, counts["invoices"], gettext("Invoices")),
            _changelist_link(Ticket, obj, counts["tickets"], gettext("Tickets")),
            _changelist_link(ActivityEvent, obj, activity, gettext("Activity")),
            _changelist_link(LedgerAccount, obj, obj.ledger_accounts.count(), gettext("Ledger accounts")),
        ]
        return format_html_join(" · ", "{}", ((link,) for link in links))

    @admin.display(description=_("recent activity"))
    def recent_activity(self, obj: Customer) -> str:
        events = ActivityEvent.objects.filter(customer=obj).select_related("actor").order_by("-created_at", "-pk")[:10]
        rows = format_html_join("", "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>", (
            (timezone.localtime(e.created_at).strftime("%Y-%m-%d %H:%M"), e.action, e.actor or "-", e.ip or "")
            for e in events))
        if not rows:
            return gettext("No activity yet.")
        return format_html("<table><thead><tr><th>{}</th><th>{}</th><th>{}</th><th>{}</th></tr></thead><tbody>{}</tbody></table>",
                           gettext("When"), gettext("Action"), gettext("By"), gettext("IP"), rows)

    @admin.action(description=_("Verify company details"), permissions=["verify_company"])
    def verify_company(self, request, queryset):
        return super().verify_company(request, queryset)

    @admin.action(description=_("Reject company details (with a reason)"), permissions=["verify_company"])
    def reject_company(self, request, queryset):
        return super().reject_company(request, queryset)

    @admin.action(description=_("Clear IP restriction"), permissions=["clear_ip_restriction"])
    def clear_ip_restriction(self, request, queryset):
        return super().clear_ip_restriction(request, queryset)

    @admin.action(description=_("Check a code word given by the caller"), permissions=["check_code_word"])
    def check_code_word(self, request, queryset):
        return super().check_code_word(request, queryset)

    @admin.action(description=_("Credit or debit the balance (with a reason)"), permissions=["adjust_balance"])
    def adjust_balance(self, request, queryset):
        if queryset.count() != 1:
            self.message_user(request, gettext("Select exactly one customer."), messages.ERROR)
            return None
        customer = queryset.get()
        form = BalanceAdjustForm(request.POST if "apply" in request.POST else None, initial={"nonce": uuid.uuid4().hex})
        if form.is_bound and form.is_valid():
            data = form.cleaned_data
            try:
                balance_adjust(customer=customer, amount=data["amount"], reason=data["reason"],
                               actor=request.user, idempotency_key=f"admin-adjust:{data['nonce']}")
            except ValidationError as error:
                self.message_user(request, " ".join(error.messages), messages.ERROR)
            else:
                self.message_user(request, gettext("Balance of %(id)s adjusted by %(amount)s; it is now %(balance)s.") % {
                    "id": customer.pk, "amount": format_money(data["amount"], customer.currency),
                    "balance": format_money(balance_of(customer), customer.currency)}, messages.SUCCESS)
            return None
        return _action_form(self, request, queryset, form=form, action="adjust_balance",
                            title=gettext("Credit or debit the balance"),
                            note=gettext("Current balance: %(balance)s. The reason is shown in the customer's balance history.")
                            % {"balance": format_money(balance_of(customer), customer.currency)})


# --- invoices, payments, ledger --------------------------------------------------------------------

class BankTransferActionForm(forms.Form):
    amount = PlainDecimalField(label=_("Amount received"), max_digits=20, decimal_places=4, min_value=Decimal("0.0001"))
    bank_reference = forms.CharField(label=_("Bank transaction reference"), max_length=100)
    received_on = forms.DateField(label=_("Received on"), widget=forms.DateInput(attrs={"type": "date"}))


class InvoiceBackOfficeAdmin(CustomerNames, InvoiceAdmin):
    actions = [*InvoiceAdmin.actions, "mark_paid_by_bank_transfer"]
    list_select_related = ("customer",)

    @admin.action(description=_("Refund selected paid invoices to the balance (credit note)"), permissions=["refund_payment"])
    def refund_to_balance(self, request, queryset):
        return super().refund_to_balance(request, queryset)

    @admin.action(description=_("Mark paid by bank transfer"), permissions=["record_bank_transfer"])
    def mark_paid_by_bank_transfer(self, request, queryset):
        if queryset.count() != 1:
            self.message_user(request, gettext("Select exactly one invoice."), messages.ERROR)
            return None
        invoice = queryset.get()
        form = BankTransferActionForm(request.POST if "apply" in request.POST else None,
                                      initial={"amount": invoice.amount_due, "received_on": timezone.localdate()})
        if form.is_bound and form.is_valid():
            data = form.cleaned_data
            try:
                gateway_services.bank_transfer_record(invoice=invoice, amount=data["amount"], actor=request.user,
                                                      bank_reference=data["bank_reference"], received_on=data["received_on"])
            except ValidationError as error:
                self.message_user(request, " ".join(error.messages), messages.ERROR)
            else:
                invoice.refresh_from_db()
                self.message_user(request, gettext("Payment recorded for invoice %(number)s; status: %(status)s.") % {
                    "number": invoice.number, "status": invoice.get_status_display()}, messages.SUCCESS)
            return None
        return _action_form(self, request, queryset, form=form, action="mark_paid_by_bank_transfer",
                            title=gettext("Mark paid by bank transfer"),
                            note=gettext("The bank's reference identifies the payment: recording it twice credits once."))


class PaymentAttemptBackOfficeAdmin(CustomerNames, PaymentAttemptAdmin):
    list_select_related = ("customer", "invoice")

    @admin.action(description=_("Refund to the card in full (through the gateway)"), permissions=["refund_payment"])
    def refund_in_full(self, request, queryset):
        return super().refund_in_full(request, queryset)


class BankTransferReceiptBackOfficeAdmin(BackOfficePermissions, BankTransferReceiptAdmin):
    list_select_related = ("invoice",)

    def has_add_permission(self, request):
        return super().has_add_permission(request) and self.has_record_bank_transfer_permission(request)


class LedgerAccountBackOfficeAdmin(BackOfficePermissions, CustomerNames, LedgerAccountAdmin):
    list_select_related = ("customer",)

    def adjust_view(self, request):
        if not self.has_adjust_balance_permission(request):
            raise PermissionDenied
        return super().adjust_view(request)


# --- orders and mail ---------------------------------------------------------------------------------

class OrderBackOfficeAdmin(CustomerNames, OrderAdmin):
    @admin.action(description=_("Suspend"), permissions=["manage_services"])
    def suspend(self, request, queryset):
        return super().suspend(request, queryset)

    @admin.action(description=_("Unsuspend"), permissions=["manage_services"])
    def unsuspend(self, request, queryset):
        return super().unsuspend(request, queryset)

    @admin.action(description=_("Terminate (releases the IP)"), permissions=["manage_services"])
    def terminate(self, request, queryset):
        return super().terminate(request, queryset)

    @admin.action(description=_("Extend by N days (free)"), permissions=["manage_services"])
    def extend(self, request, queryset):
        return super().extend(request, queryset)


class ProvisioningJobBackOfficeAdmin(BackOfficePermissions, ProvisioningJobAdmin):
    @admin.action(description=_("Retry (fresh attempts, runs now)"), permissions=["manage_services"])
    def retry(self, request, queryset):
        return super().retry(request, queryset)


class EmailOutboxBackOfficeAdmin(CustomerNames, EmailOutboxAdmin):
    @admin.action(description=_("Retry failed mail"), permissions=["retry_mail"])
    def retry_failed(self, request, queryset):
        ids = list(queryset.values_list("pk", flat=True))
        queued = services.outbox_retry_by_staff(email_ids=ids, staff=request.user)
        self.message_user(request, gettext("%(queued)d of %(selected)d selected emails queued for another attempt "
                                           "(only failed ones are retried).") % {"queued": queued, "selected": len(ids)},
                          messages.SUCCESS if queued else messages.WARNING)


class RefundToOriginForm(forms.Form):
    amount = forms.DecimalField(label=_("Amount to refund"), max_digits=20, decimal_places=4, min_value=Decimal("0.0001"))
    reason = forms.CharField(label=_("Reason"), max_length=200)
    bank_reference = forms.CharField(label=_("Bank reference of the transfer you sent (bank payments only)"), max_length=100,
                                     required=False)


class PaymentNamesAdmin(BackOfficePermissions, CustomerNames, PaymentAdmin):
    list_select_related = ("customer", "invoice")
    actions = ["refund_to_origin"]

    @admin.action(description=_("Refund to the card or bank account it came from"), permissions=["refund_payment"])
    def refund_to_origin(self, request, queryset):
        """Card payments go back through their gateway; bank payments are recorded as the transfer staff sent.
        Either way the ledger moves (balance or revenue and tax, clearing) and a credit note documents it."""
        if queryset.count() != 1:
            self.message_user(request, gettext("Select exactly one payment."), messages.ERROR)
            return None
        payment = queryset.get()
        form = RefundToOriginForm(request.POST if "apply" in request.POST else None,
                                  initial={"amount": payment.amount - payment.refunded_amount})
        if form.is_bound and form.is_valid():
            data = form.cleaned_data
            try:
                refund = gateway_services.payment_refund_to_origin(payment=payment, amount=data["amount"], reason=data["reason"],
                                                                   bank_reference=data["bank_reference"], actor=request.user)
            except ValidationError as error:
                self.message_user(request, " ".join(error.messages), messages.ERROR)
            else:
                self.message_user(request, gettext("Refunded %(amount)s of payment #%(id)s and recorded it in the ledger.") % {
                    "amount": format_money(refund.amount, refund.currency), "id": payment.pk}, messages.SUCCESS)
            return None
        return _action_form(self, request, queryset, form=form, action="refund_to_origin",
                            title=gettext("Refund to the card or bank account it came from"),
                            note=gettext("Card payments are refunded through their payment system. For a bank payment, "
                                         "send the transfer first and enter its reference."))


class CreditNoteNamesAdmin(CustomerNames, CreditNoteAdmin):
    list_select_related = ("customer", "invoice")


class TicketNamesAdmin(CustomerNames, TicketAdmin):
    pass


class ActivityEventNamesAdmin(CustomerNames, ActivityEventAdmin):
    pass


# --- account deletion: settle the money before approval ----------------------------------------------

class DeletionSettlementForm(forms.Form):
    method = forms.ChoiceField(label=_("Positive balance"), choices=DeletionSettlement.choices,
                               widget=forms.RadioSelect)
    reason = forms.CharField(label=_("Reason"), max_length=200)
    bank_reference = forms.CharField(label=_("Bank transfer reference"), max_length=120, required=False,
                                     help_text=_("Required for a refund: the reference of the transfer you sent."))

    def clean(self):
        data = super().clean()
        if data.get("method") == DeletionSettlement.REFUND_BANK and not data.get("bank_reference", "").strip():
            self.add_error("bank_reference", _("Enter the bank's transaction reference."))
        return data


class DeletionRequestBackOfficeAdmin(CustomerNames, DeletionRequestAdmin):
    actions = [*DeletionRequestAdmin.actions, "settle_money"]

    @admin.action(description=_("Settle the money: cancel open invoices, refund or write off the balance"),
                  permissions=["adjust_balance"])
    def settle_money(self, request, queryset):
        if queryset.count() != 1:
            self.message_user(request, gettext("Select exactly one request."), messages.ERROR)
            return None
        deletion_request = queryset.select_related("customer").get()
        form = DeletionSettlementForm(request.POST if "apply" in request.POST else None)
        if form.is_bound and form.is_valid():
            try:
                posted = customer_settle_for_deletion(
                    customer=deletion_request.customer, deletion_request=deletion_request,
                    method=form.cleaned_data["method"], reason=form.cleaned_data["reason"],
                    bank_reference=form.cleaned_data["bank_reference"], actor=request.user)
            except ValidationError as error:
                self.message_user(request, " ".join(error.messages), messages.ERROR)
            else:
                self.message_user(request, gettext("%(id)s: open invoices cancelled, %(n)d refund(s) or write-off(s) recorded on the ledger.")
                                  % {"id": deletion_request.customer_id, "n": len(posted)}, messages.SUCCESS)
            return None
        items = [f"{item.label}: {item.value}" for item in
                 self.open_items_of(deletion_request) if item.blocks] or [gettext("nothing to settle")]
        return _action_form(self, request, queryset, form=form, action="settle_money",
                            title=gettext("Settle the money before deleting the account"),
                            note=gettext("Open invoices are cancelled (what was applied returns to the balance); the "
                                         "balance is then refunded by bank transfer (you send the money and enter the "
                                         "bank's reference; it is recorded against the payments that brought it) or "
                                         "written off; a negative balance is always written off. Now: %(items)s")
                            % {"items": "; ".join(items)})

    @staticmethod
    def open_items_of(deletion_request):
        from accounts.personal_data import deletion_open_items

        return deletion_open_items(deletion_request.customer)


for model, model_admin in ((Customer, CustomerBackOfficeAdmin), (Invoice, InvoiceBackOfficeAdmin),
                           (Payment, PaymentNamesAdmin), (CreditNote, CreditNoteNamesAdmin), (Ticket, TicketNamesAdmin),
                           (ActivityEvent, ActivityEventNamesAdmin),
                           (PaymentAttempt, PaymentAttemptBackOfficeAdmin), (BankTransferReceipt, BankTransferReceiptBackOfficeAdmin),
                           (LedgerAccount, LedgerAccountBackOfficeAdmin), (Order, OrderBackOfficeAdmin),
                           (EmailOutbox, EmailOutboxBackOfficeAdmin), (ProvisioningJob, ProvisioningJobBackOfficeAdmin),
                           (DeletionRequest, DeletionRequestBackOfficeAdmin)):
    admin.site.unregister(model)
    admin.site.register(model, model_admin)


# --- reports ------------------------------------------------------------------------------------------

class AccountingExportForm(forms.Form):
    what = forms.ChoiceField(label=_("Data"), choices=[("invoices", _("Invoices")), ("payments", _("Payments")),
                                                       ("credit_notes", _("Credit notes")), ("ledger", _("Ledger")),
                                                       ("oss", _("OSS: EU B2C sales by country and VAT rate"))])
    date_from = forms.DateField(label=_("From"))
    date_to = forms.DateField(label=_("To (inclusive)"))
    file_format = forms.ChoiceField(label=_("Format"), choices=[("csv", "CSV"), ("xlsx", "XLSX")])

    def clean(self):
        data = super().clean()
        if data.get("date_from") and data.get("date_to") and data["date_to"] < data["date_from"]:
            raise ValidationError(_("The end must not be before the start."))
        return data


@admin.register(StaffReport)
class StaffReportAdmin(ReadOnlyAdmin):
    """"Reports" in the admin index: one read-only page, no rows (the model has no table)."""

    def has_view_permission(self, request, obj=None):
        return request.user.is_active and request.user.is_staff and request.user.has_perm("portal.view_staffreport")

    def has_module_permission(self, request):
        return self.has_view_permission(request)

    def get_urls(self):
        from django.urls import path

        return [path("", self.admin_site.admin_view(self.changelist_view), name="portal_staffreport_changelist"),
                path("export/", self.admin_site.admin_view(self.export_view), name="portal_staffreport_export")]

    def export_view(self, request):
        """Accountants' export (GET: a download changes nothing): invoices, payments, credit notes or the
        ledger for a period, as CSV or XLSX (billing/exports.py)."""
        from django.http import HttpResponse

        from billing import exports

        if not self.has_view_permission(request):
            raise PermissionDenied
        form = AccountingExportForm(request.GET or None)
        if form.is_bound and form.is_valid():
            data = form.cleaned_data
            zone = timezone.get_current_timezone()
            start = datetime.combine(data["date_from"], time.min, tzinfo=zone)
            end = datetime.combine(data["date_to"] + timedelta(days=1), time.min, tzinfo=zone)
            header, rows = exports.accounting_rows(what=data["what"], start=start, end=end)
            name = f"{data['what']}-{data['date_from']:%Y%m%d}-{data['date_to']:%Y%m%d}"
            if data["file_format"] == "xlsx":
                response = HttpResponse(exports.to_xlsx(header, rows, title=data["what"]),
                                        content_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")
            else:
                response = HttpResponse(exports.to_csv(header, rows), content_type="text/csv; charset=utf-8")
            response["Content-Disposition"] = f'attachment; filename="{name}.{data["file_format"]}"'
            return response
        return TemplateResponse(request, "admin/portal/accounting_export.html", {
            **self.admin_site.each_context(request), "title": gettext("Export for accountants"), "opts": self.model._meta,
            "form": form,
        })

    def changelist_view(self, request, extra_context=None):
        if not self.has_view_permission(request):
            raise PermissionDenied
        return TemplateResponse(request, "admin/portal/reports.html", {
            **self.admin_site.each_context(request), "title": gettext("Reports"), "opts": self.model._meta,
            **selectors.staff_reports(),
        })
