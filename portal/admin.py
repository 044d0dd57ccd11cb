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

from accounts.admin import ActivityEventAdmin, CustomerAdmin
from accounts.admin_mixins import ReadOnlyAdmin, admin_action_form
from accounts.forms import PlainDecimalField
from accounts.models import ActivityEvent, Customer
from billing import services as billing_services
from billing.admin import CreditNoteAdmin, InvoiceAdmin, LedgerAccountAdmin, PaymentAdmin
from billing.gateways import services as gateway_services
from billing.gateways.admin import BankTransferReceiptAdmin, PaymentAttemptAdmin
from billing.gateways.models import BankTransferReceipt, PaymentAttempt
from billing.models import CreditNote, Invoice, LedgerAccount, Payment
from billing.money import format_money
from billing.selectors import balance_of
from notifications.admin import EmailOutboxAdmin
from notifications.models import EmailOutbox
from orders.admin import OrderAdmin
from orders.models import Order
from tickets.admin import TicketAdmin
from tickets.models import Ticket

from . import selectors, services
from .models import StaffReport


admin.site.site_header = admin.site.site_title = format_lazy("{} · {}", settings.PORTAL_NAME, _("Back office"))


class BackOfficePermissions:
    """`has_<codename>_permission` for Django's `@admin.action(permissions=[...])` check."""

    @staticmethod
    def _can(request, codename: str) -> bool:
        return request.user.has_perm(f"portal.{codename}")

    def has_verify_company_permission(self, request) -> bool:
        return self._can(request, "verify_company")

    def has_adjust_balance_permission(self, request) -> bool:
        return self._can(request, "adjust_balance")

    def has_record_bank_transfer_permission(self, request) -> bool:
        return self._can(request, "record_bank_transfer")

    def has_refund_payment_permission(self, request) -> bool:
        return self._can(request, "refund_payment")

    def has_manage_services_permission(self, request) -> bool:
        return self._can(request, "manage_services")

    def has_clear_ip_restriction_permission(self, request) -> bool:
        return self._can(request, "clear_ip_restriction")

    def has_check_code_word_permission(self, request) -> bool:
        return self._can(request, "check_code_word")

    def has_retry_mail_permission(self, request) -> bool:
        return self._can(request, "retry_mail")


class OwnerNamesChangeList(ChangeList):
    def get_results(self, request):
        super().get_results(request)
        path = self.model_admin.customer_path
        if path is None:
            selectors.attach_owners(self.result_list)
        else:  # only customers the page already loaded (select_related); others are not printed
            descriptor = getattr(self.model, path)
            selectors.attach_owners([getattr(obj, path) for obj in self.result_list if descriptor.is_cached(obj)])


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


class CustomerBackOfficeAdmin(BackOfficePermissions, CustomerNames, CustomerAdmin):
    """accounts' CustomerAdmin plus balance, related records and permission-checked actions."""

    customer_path = None

    actions = [*CustomerAdmin.actions, "adjust_balance"]
    back_office_fields = ("balance", "related_records", "recent_activity")

    def get_readonly_fields(self, request, obj=None):
        # The account currency picks the ledger account: it changes only through billing's conversion.
        account_currency = ("currency",) if obj is not None else ()
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
                billing_services.balance_adjust(customer=customer, amount=data["amount"], reason=data["reason"],
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


class InvoiceBackOfficeAdmin(BackOfficePermissions, CustomerNames, InvoiceAdmin):
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


class PaymentAttemptBackOfficeAdmin(BackOfficePermissions, CustomerNames, PaymentAttemptAdmin):
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

class OrderBackOfficeAdmin(BackOfficePermissions, CustomerNames, OrderAdmin):
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


class EmailOutboxBackOfficeAdmin(BackOfficePermissions, CustomerNames, EmailOutboxAdmin):
    @admin.action(description=_("Retry failed mail"), permissions=["retry_mail"])
    def retry_failed(self, request, queryset):
        ids = list(queryset.values_list("pk", flat=True))
        queued = services.outbox_retry_by_staff(email_ids=ids, staff=request.user)
        self.message_user(request, gettext("%(queued)d of %(selected)d selected emails queued for another attempt "
                                           "(only failed ones are retried).") % {"queued": queued, "selected": len(ids)},
                          messages.SUCCESS if queued else messages.WARNING)


class PaymentNamesAdmin(CustomerNames, PaymentAdmin):
    list_select_related = ("customer", "invoice")


class CreditNoteNamesAdmin(CustomerNames, CreditNoteAdmin):
    list_select_related = ("customer", "invoice")


class TicketNamesAdmin(CustomerNames, TicketAdmin):
    pass


class ActivityEventNamesAdmin(CustomerNames, ActivityEventAdmin):
    pass


for model, model_admin in ((Customer, CustomerBackOfficeAdmin), (Invoice, InvoiceBackOfficeAdmin),
                           (Payment, PaymentNamesAdmin), (CreditNote, CreditNoteNamesAdmin), (Ticket, TicketNamesAdmin),
                           (ActivityEvent, ActivityEventNamesAdmin),
                           (PaymentAttempt, PaymentAttemptBackOfficeAdmin), (BankTransferReceipt, BankTransferReceiptBackOfficeAdmin),
                           (LedgerAccount, LedgerAccountBackOfficeAdmin), (Order, OrderBackOfficeAdmin),
                           (EmailOutbox, EmailOutboxBackOfficeAdmin)):
    admin.site.unregister(model)
    admin.site.register(model, model_admin)


# --- reports ------------------------------------------------------------------------------------------

@admin.register(StaffReport)
class StaffReportAdmin(ReadOnlyAdmin):
    """"Reports" in the admin index: one read-only page, no rows (the model has no table)."""

    def has_view_permission(self, request, obj=None):
        return request.user.is_active and request.user.is_staff and request.user.has_perm("portal.view_staffreport")

    def has_module_permission(self, request):
        return self.has_view_permission(request)

    def get_urls(self):
        from django.urls import path

        return [path("", self.admin_site.admin_view(self.changelist_view), name="portal_staffreport_changelist")]

    def changelist_view(self, request, extra_context=None):
        if not self.has_view_permission(request):
            raise PermissionDenied
        return TemplateResponse(request, "admin/portal/reports.html", {
            **self.admin_site.each_context(request), "title": gettext("Reports"), "opts": self.model._meta,
            **selectors.staff_reports(),
        })
