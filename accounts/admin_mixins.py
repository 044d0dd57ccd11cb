from django.contrib import admin
from django.utils.text import Truncator
from django.utils.translation import gettext_lazy as _

# The back office's action permissions (portal.BackOfficeAction; only the codenames live here, so every
# app's admin can require them without importing the portal).
BACK_OFFICE_ACTIONS = (
    "verify_company", "adjust_balance", "record_bank_transfer", "refund_payment", "manage_services",
    "clear_ip_restriction", "check_code_word", "retry_mail", "review_deletion", "manage_invoices",
    "reset_two_factor",
)


class BackOfficePermissions:
    """`has_<codename>_permission` for Django's `@admin.action(permissions=[...])` check: every money,
    security and service-state action names one of BACK_OFFICE_ACTIONS; other actions name a model
    permission ("change"). An action without `permissions=` would run for a view-only staff user."""

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

    def has_review_deletion_permission(self, request) -> bool:
        return self._can(request, "review_deletion")

    def has_manage_invoices_permission(self, request) -> bool:
        return self._can(request, "manage_invoices")

    def has_reset_two_factor_permission(self, request) -> bool:
        return self._can(request, "reset_two_factor")


class ReadOnlyAdmin(admin.ModelAdmin):
    """Records nobody edits in admin (ledger, audit, logs): staff can look, never add, change or delete."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class ReadOnlyInline:
    """An inline of rows shown under their parent for reference (events, lines, entries, jobs): every
    field in `fields` read-only, no rows added or deleted. Mix in before `admin.TabularInline` (or
    `StackedInline`)."""

    extra = 0
    can_delete = False

    def get_readonly_fields(self, request, obj=None):
        return self.fields

    def has_add_permission(self, request, obj=None):
        return False


def admin_action_form(model_admin, request, queryset, *, form, title: str, action: str, note: str = ""):
    """The intermediate page of an admin action that needs input or confirmation; it re-posts the
    selection with `apply`, and the action acts only then."""
    from django.contrib.admin import helpers
    from django.template.response import TemplateResponse

    return TemplateResponse(request, "accounts/admin/action_form.html", {
        **model_admin.admin_site.each_context(request), "title": title, "form": form, "queryset": queryset,
        "action": action, "note": note, "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        "opts": model_admin.model._meta,
    })


class LastErrorColumn:
    """`short_error`: a list column with the start of a retried row's `last_error` (outboxes, jobs)."""

    @admin.display(description=_("last error"))
    def short_error(self, obj) -> str:
        return Truncator(obj.last_error).chars(80)
