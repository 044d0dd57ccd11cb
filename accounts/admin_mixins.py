from django.contrib import admin


class ReadOnlyAdmin(admin.ModelAdmin):
    """Records nobody edits in admin (ledger, audit, logs): staff can look, never add, change or delete."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
