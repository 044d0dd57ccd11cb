from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin
from django.core.exceptions import ValidationError
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from . import personal_data
from .admin_mixins import BackOfficePermissions, ReadOnlyAdmin, ReadOnlyInline, admin_action_form
from .forms import StaffCodeWordForm, StaffLoginForm, StaffReasonForm
from .models import (
    ActivityEvent, Customer, DataExport, DeletionRequest, PhoneVerification, PolicyAcceptance, PolicyVersion, User,
)
from .services.deletion import deletion_request_approve, deletion_request_reject
from .services.policies import policy_publish, policy_version_create
from .services.security import customer_check_code_word, customer_clear_ip_allowlist
from .services.staff import customer_reject_company, customer_verify_company
from .services.totp import two_factor_reset


# The admin login asks enrolled staff for their second factor.
admin.site.login_form = StaffLoginForm


class IntermediateActionMixin:
    """An admin action that first shows a confirmation page (with an optional form) and acts on "apply"."""

    def _intermediate(self, request, queryset, *, form, title: str, action: str, note: str = ""):
        return admin_action_form(self, request, queryset, form=form, title=title, action=action, note=note)


class CustomerUserInline(ReadOnlyInline, admin.TabularInline):
    model = User
    fields = ("username", "email", "role", "email_verified", "is_active", "last_login")
    show_change_link = True


@admin.register(Customer)
class CustomerAdmin(BackOfficePermissions, IntermediateActionMixin, admin.ModelAdmin):
    list_display = ("id", "display_name_column", "profile_type", "verification_status", "country", "currency", "created_at")
    list_filter = ("profile_type", "verification_status", "currency")
    search_fields = ("=id", "company_name", "users__username", "users__email", "users__last_name")
    inlines = [CustomerUserInline]
    # Security state changes only through the actions below (audited services), never by editing fields.
    readonly_fields = ("id", "created_at", "verification_status", "verification_note", "code_word_state",
                       "ip_allowlist")
    exclude = ("code_word_hash",)
    actions = ["verify_company", "reject_company", "clear_ip_restriction", "check_code_word"]

    @admin.display(description=_("code word"))
    def code_word_state(self, obj: Customer) -> str:
        return gettext("set") if obj.code_word_hash else gettext("not set")


    @admin.action(description=_("Verify company details"), permissions=["verify_company"])
    def verify_company(self, request, queryset):
        done = 0
        for customer in queryset:
            try:
                customer_verify_company(customer=customer, staff=request.user)
                done += 1
            except ValidationError as error:
                self.message_user(request, f"{customer.pk}: {error.messages[0]}", messages.WARNING)
        if done:
            self.message_user(request, gettext("%(n)d company profile(s) verified.") % {"n": done}, messages.SUCCESS)

    @admin.action(description=_("Reject company details (with a reason)"), permissions=["verify_company"])
    def reject_company(self, request, queryset):
        form = StaffReasonForm(request.POST if "apply" in request.POST else None)
        if form.is_bound and form.is_valid():
            for customer in queryset:
                try:
                    customer_reject_company(customer=customer, staff=request.user, reason=form.cleaned_data["reason"])
                except ValidationError as error:
                    self.message_user(request, f"{customer.pk}: {error.messages[0]}", messages.WARNING)
                else:
                    self.message_user(request, gettext("%(id)s: company details rejected.") % {"id": customer.pk},
                                      messages.SUCCESS)
            return None
        return self._intermediate(request, queryset, form=form, title=gettext("Reject company details"),
                                  action="reject_company")

    @admin.action(description=_("Clear IP restriction"), permissions=["clear_ip_restriction"])
    def clear_ip_restriction(self, request, queryset):
        for customer in queryset:
            customer_clear_ip_allowlist(customer=customer, staff=request.user)
        self.message_user(request, gettext("IP restriction cleared for %(n)d customer(s).") % {"n": len(queryset)},
                          messages.SUCCESS)

    @admin.action(description=_("Check a code word given by the caller"), permissions=["check_code_word"])
    def check_code_word(self, request, queryset):
        if queryset.count() != 1:
            self.message_user(request, gettext("Select exactly one customer."), messages.ERROR)
            return None
        customer = queryset.get()
        form = StaffCodeWordForm(request.POST if "apply" in request.POST else None)
        if form.is_bound and form.is_valid():
            if not customer.code_word_hash:
                self.message_user(request, gettext("This customer has not set a code word."), messages.WARNING)
            elif customer_check_code_word(customer=customer, staff=request.user,
                                          candidate=form.cleaned_data["candidate"]):
                self.message_user(request, gettext("The code word matches."), messages.SUCCESS)
            else:
                self.message_user(request, gettext("The code word does NOT match."), messages.ERROR)
            return None
        return self._intermediate(request, queryset, form=form, title=gettext("Check code word"),
                                  action="check_code_word",
                                  note=gettext("The code word is stored hashed: it can be checked, never read."))

    @admin.display(description=_("name"))
    def display_name_column(self, obj: Customer) -> str:
        # A private person is named by the owner login (attached in bulk by the back office's list).
        return obj.display_name or "-"


@admin.register(User)
class UserAdmin(BackOfficePermissions, BaseUserAdmin):
    list_display = ("username", "email", "client_id", "role", "email_verified", "has_two_factor", "is_staff",
                    "last_login")
    actions = ["reset_two_factor"]
    list_filter = ("email_verified", "role", "is_staff", "is_active")
    search_fields = ("username", "email", "=customer__id", "first_name", "last_name")
    list_select_related = ("customer",)
    ordering = ("-date_joined",)
    fieldsets = BaseUserAdmin.fieldsets + (
        (_("Customer"), {"fields": ("customer", "role", "email_verified", "theme")}),
    )
    add_fieldsets = (
        (None, {"classes": ("wide",), "fields": ("username", "email", "usable_password", "password1", "password2")}),
    )

    @admin.display(description=_("client ID"), ordering="customer_id")
    def client_id(self, obj: User):
        return obj.customer_id or "-"

    def get_queryset(self, request):
        from django.db.models import Exists, OuterRef
        from django_otp.plugins.otp_totp.models import TOTPDevice

        # Only whether a second factor exists: its seed and recovery codes are never shown to staff.
        return super().get_queryset(request).annotate(
            two_factor=Exists(TOTPDevice.objects.filter(user=OuterRef("pk"), confirmed=True)))

    @admin.display(description=_("2FA"), boolean=True, ordering="two_factor")
    def has_two_factor(self, obj: User) -> bool:
        return obj.two_factor

    @admin.action(description=_("Turn off two-factor authentication (lost phone)"), permissions=["reset_two_factor"])
    def reset_two_factor(self, request, queryset):
        done = sum(two_factor_reset(user=user, staff=request.user) for user in queryset.order_by("pk"))
        self.message_user(request, gettext("Two-factor authentication turned off for %(n)d login(s).") % {"n": done},
                          messages.SUCCESS if done else messages.WARNING)

    def get_readonly_fields(self, request, obj=None):
        fields = list(super().get_readonly_fields(request, obj))
        if obj is not None:
            # The username is immutable (a DB trigger also enforces it); moving a login to another
            # customer would hand it that customer's account.
            fields += ["username", "has_two_factor", "customer"]
        if not request.user.is_superuser:
            # "Can change user" must not be a way to grant oneself (or anyone) more rights.
            fields += ["is_superuser", "is_staff", "groups", "user_permissions"]
        return fields

    def get_fieldsets(self, request, obj=None):
        fieldsets = super().get_fieldsets(request, obj)
        if obj is None:
            return fieldsets
        return [*fieldsets, (_("Security"), {"fields": ("has_two_factor",)})]


@admin.register(ActivityEvent)
class ActivityEventAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "action", "customer", "actor", "ip", "visible_to_customer")
    list_filter = ("action", "visible_to_customer")
    search_fields = ("=customer__id", "actor__username", "action", "ip")
    list_select_related = ("customer", "actor")
    date_hierarchy = "created_at"


@admin.register(PhoneVerification)
class PhoneVerificationAdmin(admin.ModelAdmin):
    list_display = ("created_at", "user", "phone", "method", "attempts", "expires_at", "verified_at")
    search_fields = ("user__username", "phone")
    exclude = ("code_hash",)
    list_select_related = ("user",)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(PolicyVersion)
class PolicyVersionAdmin(admin.ModelAdmin):
    """Staff write a new version (numbered automatically) and publish it; published text never changes."""

    list_display = ("kind", "version", "title", "published_at", "created_at", "acceptance_count")
    list_filter = ("kind",)
    fields = ("kind", "version", "title", "changes", "text", "title_ru", "changes_ru", "text_ru", "published_at", "created_by")
    actions = ["publish"]

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return ("version", "published_at", "created_by")
        if obj.published_at:
            return self.fields
        return ("kind", "version", "published_at", "created_by")

    def has_delete_permission(self, request, obj=None):
        return super().has_delete_permission(request, obj) and obj is not None and obj.published_at is None

    @admin.display(description=_("accepted by"))
    def acceptance_count(self, obj: PolicyVersion) -> int:
        return obj.acceptances.count()

    def save_model(self, request, obj, form, change):
        if change:
            obj.full_clean()
            obj.save()
            return
        created = policy_version_create(kind=obj.kind, title=obj.title, text=obj.text, changes=obj.changes,
                                        title_ru=obj.title_ru, text_ru=obj.text_ru, changes_ru=obj.changes_ru,
                                        staff=request.user)
        obj.pk, obj.version = created.pk, created.version

    @admin.action(description=_("Publish (customers are asked to accept it)"), permissions=["change"])
    def publish(self, request, queryset):
        for policy in queryset.order_by("kind", "version"):
            try:
                policy_publish(policy=policy, staff=request.user)
            except ValidationError as error:
                self.message_user(request, f"{policy}: {error.messages[0]}", messages.WARNING)
            else:
                self.message_user(request, gettext("%(policy)s published.") % {"policy": policy}, messages.SUCCESS)


@admin.register(PolicyAcceptance)
class PolicyAcceptanceAdmin(ReadOnlyAdmin):
    list_display = ("accepted_at", "policy", "user", "ip")
    list_filter = ("policy",)
    search_fields = ("user__username", "=user__customer__id")
    list_select_related = ("policy", "user")


@admin.register(DataExport)
class DataExportAdmin(admin.ModelAdmin):
    list_display = ("created_at", "customer", "requested_by", "status", "size", "finished_at", "expires_at", "attempts")
    list_filter = ("status",)
    search_fields = ("=customer__id",)
    list_select_related = ("customer", "requested_by")
    exclude = ("file",)  # the archive is the customer's; staff see only that it exists

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(DeletionRequest)
class DeletionRequestAdmin(BackOfficePermissions, IntermediateActionMixin, admin.ModelAdmin):
    list_display = ("created_at", "customer", "requested_by", "status", "reviewed_by", "reviewed_at")
    list_filter = ("status",)
    search_fields = ("=customer__id",)
    list_select_related = ("customer", "requested_by", "reviewed_by")
    readonly_fields = ("customer", "requested_by", "reason", "status", "created_at", "reviewed_by", "reviewed_at",
                       "staff_note", "open_items")
    actions = ["approve", "reject"]

    @admin.display(description=_("To settle before approval"))
    def open_items(self, obj):
        """Balance, open invoices (settle first) and running services (ended by approval), from the apps."""
        from django.utils.html import format_html, format_html_join

        if obj is None or obj.status != DeletionRequest.Status.PENDING:
            return "—"
        items = personal_data.deletion_open_items(obj.customer)
        if not items:
            return gettext("Nothing: no balance, open invoices or running services.")
        return format_html("<ul>{}</ul>", format_html_join("", "<li>{}{}: {}</li>", (
            (gettext("Settle first — ") if item.blocks else "", item.label, item.value) for item in items)))

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


    @admin.action(description=_("Approve: terminate services and anonymize personal data"), permissions=["review_deletion"])
    def approve(self, request, queryset):
        if "apply" not in request.POST:
            unsettled = [f"{request_.customer_id}: {item.label}: {item.value}" for request_ in queryset
                         for item in personal_data.deletion_open_items(request_.customer) if item.blocks]
            note = gettext("Services are terminated and personal data is anonymized at once; this cannot be "
                           "undone. Invoices and the ledger are kept.")
            if unsettled:
                note += " " + gettext("Not settled yet (approval is refused until the money is refunded or "
                                      "written off): %(items)s") % {"items": "; ".join(unsettled)}
            return self._intermediate(request, queryset, form=None, title=gettext("Approve account deletion"),
                                      action="approve", note=note)
        for deletion_request in queryset:
            try:
                deletion_request_approve(deletion_request=deletion_request, staff=request.user)
            except ValidationError as error:
                self.message_user(request, f"{deletion_request.customer_id}: {error.messages[0]}", messages.WARNING)
            else:
                self.message_user(request, gettext("%(id)s: personal data anonymized.") % {
                    "id": deletion_request.customer_id}, messages.SUCCESS)
        return None

    @admin.action(description=_("Reject (with a reason)"), permissions=["review_deletion"])
    def reject(self, request, queryset):
        form = StaffReasonForm(request.POST if "apply" in request.POST else None)
        if form.is_bound and form.is_valid():
            for deletion_request in queryset:
                try:
                    deletion_request_reject(deletion_request=deletion_request, staff=request.user,
                                            note=form.cleaned_data["reason"])
                except ValidationError as error:
                    self.message_user(request, f"{deletion_request.customer_id}: {error.messages[0]}", messages.WARNING)
            return None
        return self._intermediate(request, queryset, form=form, title=gettext("Reject account deletion"),
                                  action="reject")
