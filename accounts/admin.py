from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin
from django.utils.translation import gettext_lazy as _

from .models import Customer, User


class CustomerUserInline(admin.TabularInline):
    model = User
    fields = ("username", "email", "role", "email_verified", "is_active", "last_login")
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Customer)
class CustomerAdmin(admin.ModelAdmin):
    list_display = ("id", "display_name_column", "profile_type", "verification_status", "country", "currency", "created_at")
    list_filter = ("profile_type", "verification_status", "currency")
    search_fields = ("=id", "company_name", "users__username", "users__email", "users__last_name")
    inlines = [CustomerUserInline]
    readonly_fields = ("id", "created_at")

    @admin.display(description=_("name"))
    def display_name_column(self, obj: Customer) -> str:
        return obj.company_name or "-"


@admin.register(User)
class UserAdmin(BaseUserAdmin):
    list_display = ("username", "email", "client_id", "role", "email_verified", "is_staff", "last_login")
    list_filter = ("email_verified", "role", "is_staff", "is_active")
    search_fields = ("username", "email", "=customer__id", "first_name", "last_name")
    list_select_related = ("customer",)
    ordering = ("-date_joined",)
    fieldsets = BaseUserAdmin.fieldsets + (
        (_("Customer"), {"fields": ("customer", "role", "email_verified")}),
    )
    add_fieldsets = (
        (None, {"classes": ("wide",), "fields": ("username", "email", "usable_password", "password1", "password2")}),
    )

    @admin.display(description=_("client ID"), ordering="customer_id")
    def client_id(self, obj: User):
        return obj.customer_id or "-"

    def get_readonly_fields(self, request, obj=None):
        fields = list(super().get_readonly_fields(request, obj))
        if obj is not None:
            fields.append("username")  # immutable once created (a DB trigger also enforces it)
        return fields
