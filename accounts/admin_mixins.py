from django.contrib import admin


class ReadOnlyAdmin(admin.ModelAdmin):
    """Records nobody edits in admin (ledger, audit, logs): staff can look, never add, change or delete."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
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
