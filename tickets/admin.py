"""Staff side: the ticket queue, the thread with a reply form, internal notes and assignment."""
from datetime import timedelta

from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db.models import F
from django.http import HttpRequest, HttpResponseNotAllowed
from django.shortcuts import get_object_or_404, redirect
from django.urls import path
from django.utils import timezone
from django.utils.html import format_html
from django.utils.timesince import timesince
from django.utils.translation import gettext as _, gettext_lazy, ngettext

from . import selectors, services
from .downloads import attachment_response
from .forms import StaffReplyForm
from .models import Attachment, Department, Ticket

# Waiting longer than this is shown in red in the queue.
WAITING_ALERT = timedelta(hours=24)


@admin.register(Department)
class DepartmentAdmin(admin.ModelAdmin):
    list_display = ("name", "category", "email", "is_active", "position")
    list_editable = ("is_active", "position")
    prepopulated_fields = {"slug": ("name",)}

    def has_delete_permission(self, request, obj=None):
        return False  # tickets reference departments; deactivate instead


@admin.register(Ticket)
class TicketAdmin(admin.ModelAdmin):
    change_form_template = "admin/tickets/ticket/change_form.html"
    list_display = ("number_column", "subject", "customer_id", "department", "priority", "status", "assigned_to",
                    "waiting_column", "last_reply_at")
    list_display_links = ("number_column", "subject")
    list_filter = ("status", "department", "priority", ("assigned_to", admin.RelatedOnlyFieldListFilter))
    list_select_related = ("department", "assigned_to")
    search_fields = ("=id", "subject", "=customer__id", "customer__users__email")
    # The queue: whoever has waited longest first, then everything else by recent activity.
    ordering = (F("awaiting_staff_since").asc(nulls_last=True), "-last_reply_at")
    fields = ("customer", "subject", "related_order", "department", "priority", "assigned_to", "status",
              "waiting_column", "created_at", "created_by", "last_reply_at", "closed_at")
    readonly_fields = ("customer", "subject", "related_order", "status", "waiting_column", "created_at", "created_by",
                       "last_reply_at", "closed_at")
    actions = ("assign_to_me", "close_tickets")
    list_per_page = 50

    @admin.display(description=gettext_lazy("number"), ordering="pk")
    def number_column(self, ticket: Ticket) -> str:
        return f"#{ticket.number}"

    @admin.display(description=gettext_lazy("waiting"), ordering="awaiting_staff_since")
    def waiting_column(self, ticket: Ticket) -> str:
        if ticket.awaiting_staff_since is None:
            return "—"
        waited = timezone.now() - ticket.awaiting_staff_since
        text = timesince(ticket.awaiting_staff_since, depth=2)
        if waited >= WAITING_ALERT:
            return format_html('<strong style="color:#b02a37">{}</strong>', text)
        return text

    def has_add_permission(self, request):
        return False  # customers open tickets; staff answer them

    def has_delete_permission(self, request, obj=None):
        return False  # a conversation is a record; close it instead

    def save_model(self, request, obj, form, change):
        services.ticket_staff_update(
            ticket=obj, actor=request.user, department=form.cleaned_data["department"],
            priority=form.cleaned_data["priority"], assigned_to=form.cleaned_data["assigned_to"],
        )

    def get_urls(self):
        info = self.opts.app_label, self.opts.model_name
        return [
            path("<int:object_id>/reply/", self.admin_site.admin_view(self.reply_view), name="%s_%s_reply" % info),
            path("attachment/<int:attachment_id>/", self.admin_site.admin_view(self.attachment_view),
                 name="%s_%s_attachment" % info),
        ] + super().get_urls()

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = extra_context or {}
        ticket = self.get_object(request, object_id)
        if ticket is not None:
            extra_context.setdefault("reply_form", StaffReplyForm())
            extra_context["thread"] = selectors.ticket_thread_for_staff(ticket=ticket)
            extra_context["ticket"] = ticket
        return super().change_view(request, object_id, form_url, extra_context)

    def reply_view(self, request: HttpRequest, object_id: int):
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        ticket = get_object_or_404(Ticket, pk=object_id)
        if not self.has_change_permission(request, ticket):
            return redirect("admin:index")
        form = StaffReplyForm(request.POST, request.FILES)
        if form.is_valid():
            try:
                message = services.message_post_staff(
                    ticket=ticket, staff_user=request.user, body=form.cleaned_data["body"],
                    is_internal=form.cleaned_data["is_internal"], files=form.cleaned_data["attachments"],
                )
            except ValidationError as error:
                form.add_error(None, error)
            else:
                messages.success(request, _("Internal note added.") if message.is_internal
                                 else _("Reply sent; the customer has been notified."))
                return redirect("admin:tickets_ticket_change", ticket.pk)
        # Show the change page again with the typed reply and its errors.
        request.method = "GET"
        return self.change_view(request, str(ticket.pk), extra_context={"reply_form": form})

    def attachment_view(self, request: HttpRequest, attachment_id: int):
        attachment = get_object_or_404(Attachment.objects.select_related("message__ticket"), pk=attachment_id)
        if not self.has_view_permission(request, attachment.message.ticket):
            return redirect("admin:index")
        return attachment_response(attachment)

    @admin.action(description=gettext_lazy("Assign selected tickets to me"), permissions=["change"])
    def assign_to_me(self, request, queryset):
        for ticket in queryset.select_related("department"):
            services.ticket_staff_update(ticket=ticket, actor=request.user, department=ticket.department,
                                         priority=ticket.priority, assigned_to=request.user)
        self.message_user(request, ngettext("%(count)d ticket assigned to you.", "%(count)d tickets assigned to you.",
                                            queryset.count()) % {"count": queryset.count()})

    @admin.action(description=gettext_lazy("Close selected tickets"), permissions=["change"])
    def close_tickets(self, request, queryset):
        count = 0
        for ticket in queryset.exclude(status=Ticket.Status.CLOSED):
            services.ticket_close(ticket=ticket, user=request.user)
            count += 1
        self.message_user(request, ngettext("%(count)d ticket closed.", "%(count)d tickets closed.", count)
                          % {"count": count})

