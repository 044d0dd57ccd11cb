from django.contrib import admin, messages

from accounts.admin_mixins import BackOfficePermissions
from django.utils.translation import gettext_lazy as _, ngettext

from . import services
from .models import TelegramLink, TelegramOutbox, TelegramUpdate


@admin.register(TelegramLink)
class TelegramLinkAdmin(admin.ModelAdmin):
    list_display = ("user", "customer", "telegram_username", "chat_id", "linked_at")
    search_fields = ("user__username", "user__email", "telegram_username", "=chat_id", "=customer__id")
    readonly_fields = ("user", "customer", "chat_id", "telegram_username", "telegram_name", "kinds", "linked_at")

    def has_add_permission(self, request):
        return False  # only the customer's own /start links a chat


@admin.register(TelegramOutbox)
class TelegramOutboxAdmin(BackOfficePermissions, admin.ModelAdmin):
    list_display = ("created_at", "chat_id", "customer", "reference", "status", "attempts", "sent_at")
    list_filter = ("status",)
    search_fields = ("=chat_id", "reference", "text")
    readonly_fields = [field.name for field in TelegramOutbox._meta.fields]
    actions = ["retry_failed"]

    def has_add_permission(self, request):
        return False

    @admin.action(description=_("Retry failed messages"), permissions=["retry_mail"])
    def retry_failed(self, request, queryset):
        count = services.telegram_retry(outbox_ids=list(queryset.values_list("pk", flat=True)))
        self.message_user(request, ngettext("%d message queued again.", "%d messages queued again.", count) % count,
                          messages.SUCCESS)


@admin.register(TelegramUpdate)
class TelegramUpdateAdmin(admin.ModelAdmin):
    list_display = ("received_at", "update_id", "chat_id", "outcome")
    list_filter = ("outcome",)
    search_fields = ("=update_id", "=chat_id")
    readonly_fields = ("update_id", "chat_id", "payload", "outcome", "received_at")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
