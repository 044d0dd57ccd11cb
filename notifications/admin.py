from django.contrib import admin, messages

from accounts.admin_mixins import BackOfficePermissions, LastErrorColumn, ReadOnlyInline
from django.utils.translation import gettext_lazy as _
from django.utils.translation import gettext, ngettext

from . import deferred, services
from .models import EmailOutbox, NoticeBatch, Notification, NotificationPreference


class EmailInline(ReadOnlyInline, admin.TabularInline):
    model = EmailOutbox
    fields = ("recipient", "status", "attempts", "last_error", "next_attempt_at", "sent_at")
    show_change_link = True


@admin.register(Notification)
class NotificationAdmin(admin.ModelAdmin):
    list_display = ("created_at", "customer", "kind", "subject", "read_at")
    list_filter = ("kind", ("read_at", admin.EmptyFieldListFilter), "created_at")
    search_fields = ("subject", "customer__id", "dedupe_key")
    list_select_related = ("customer",)
    date_hierarchy = "created_at"
    readonly_fields = (
        "customer", "kind", "subject", "body_text", "body_html", "link", "context", "dedupe_key", "read_at",
        "created_at",
    )
    inlines = [EmailInline]

    def has_add_permission(self, request) -> bool:
        return False  # notifications come from notify(), never typed in by hand


@admin.register(EmailOutbox)
class EmailOutboxAdmin(BackOfficePermissions, LastErrorColumn, admin.ModelAdmin):
    list_display = ("created_at", "recipient", "subject", "kind", "status", "attempts", "short_error", "next_attempt_at",
                    "sent_at")
    list_filter = ("status", "kind", "created_at")
    search_fields = ("recipient", "subject", "customer__id", "dedupe_key")
    date_hierarchy = "created_at"
    actions = ["retry_failed"]
    readonly_fields = (
        "notification", "customer", "kind", "recipient", "subject", "text", "html", "status", "attempts",
        "last_error", "next_attempt_at", "claimed_at", "sent_at", "created_at", "dedupe_key", "contains_secret",
    )
    # The stored columns are not what is sent (a notification's row has none, a sign-in link is sealed):
    # `text`/`html` show the message as `email_content` builds it.
    BODY_FIELDS = ("body_text", "body_html")
    exclude = BODY_FIELDS

    def has_add_permission(self, request) -> bool:
        return False

    def lookup_allowed(self, lookup, value, request=None):
        # `?body_text__regex=…` would read a sealed body one guess at a time (or any body): refused (400).
        if lookup.split("__", 1)[0] in self.BODY_FIELDS:
            return False
        return super().lookup_allowed(lookup, value, request)

    def _content(self, email: EmailOutbox) -> tuple[str, str]:
        if email.contains_secret:  # a sign-in link works for whoever reads it
            return gettext("Hidden: the message contains a sign-in link."), ""
        try:
            _subject, text, html = services.email_content(email)
        except services.NothingToSend:
            return "", ""  # erased: the row keeps only kind, status and times
        return text, html

    @admin.display(description=_("text"))
    def text(self, email: EmailOutbox) -> str:
        return self._content(email)[0]

    @admin.display(description=_("HTML"))
    def html(self, email: EmailOutbox) -> str:
        return self._content(email)[1]

    @admin.action(description=_("Retry failed mail"), permissions=["retry_mail"])
    def retry_failed(self, request, queryset):
        count = services.email_retry(email_ids=list(queryset.values_list("pk", flat=True)))
        skipped = queryset.count() - count
        self.message_user(request, ngettext(
            "%(count)d email queued for another attempt.", "%(count)d emails queued for another attempt.", count
        ) % {"count": count}, messages.SUCCESS)
        if skipped:
            self.message_user(request, _("Only failed emails are retried; %(count)d selected were not failed.")
                              % {"count": skipped}, messages.WARNING)


@admin.register(NoticeBatch)
class NoticeBatchAdmin(BackOfficePermissions, LastErrorColumn, admin.ModelAdmin):
    """Notices a renewal run wrote and has not stored as notifications yet: normally gone within
    seconds; one listed here with attempts has failed (deferred.MAX_ATTEMPTS stops the retries)."""

    list_display = ("created_at", "kind", "size", "attempts", "short_error")
    list_filter = ("kind",)
    readonly_fields = ("kind", "notices", "created_at", "attempts", "last_error")
    actions = ["retry"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description=_("notices"))
    def size(self, batch: NoticeBatch) -> int:
        return len(batch.notices)

    @admin.action(description=_("Retry stopped batches"), permissions=["retry_mail"])
    def retry(self, request, queryset):
        count = deferred.notice_batches_retry(batch_ids=list(queryset.values_list("pk", flat=True)))
        self.message_user(request, ngettext(
            "%(count)d batch will be tried again.", "%(count)d batches will be tried again.", count
        ) % {"count": count}, messages.SUCCESS)


@admin.register(NotificationPreference)
class NotificationPreferenceAdmin(admin.ModelAdmin):
    list_display = ("customer", "kind", "email_enabled", "updated_at")
    list_filter = ("kind", "email_enabled")
    search_fields = ("customer__id",)
    raw_id_fields = ("customer",)
