"""Back office: catalogue, IP pools, and orders with staff actions that go through the audited services."""
from datetime import timedelta

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db.models import Count, Q
from django.template.loader import render_to_string
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from accounts.admin_mixins import BackOfficePermissions, LastErrorColumn, ReadOnlyInline, admin_action_form

from .models import (AddonChange, HypervisorNode, IpAddress, IpPool, Location, Order, OrderAddon, OrderEvent, OrderRenewal, OsImage,
                     OsTemplate, Plan, PlanAddon, PlanAddonPrice, PlanPrice, ProductType, PromoCode, PromoRedemption,
                     ProvisioningJob, TrafficOverage, VirtualMachine)
from .order_fields import OPTION_LABELS
from .provisioning import jobs as provisioning_jobs
from .provisioning.registry import module_codes
from .services import placing, renewing, staff


@admin.register(Location)
class LocationAdmin(admin.ModelAdmin):
    list_display = ("name", "code")


@admin.register(ProductType)
class ProductTypeAdmin(admin.ModelAdmin):
    list_display = ("name", "code", "provisioner", "order_fields", "is_active", "sort_order")
    list_editable = ("is_active", "sort_order")


@admin.register(OsImage)
class OsImageAdmin(admin.ModelAdmin):
    list_display = ("name", "is_active", "sort_order")
    filter_horizontal = ("product_types",)


class PlanPriceInline(admin.TabularInline):
    model = PlanPrice
    extra = 1

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("plan")  # each row's __str__ names its plan


class PlanAdminForm(forms.ModelForm):
    module = forms.ChoiceField(label=_("provisioning module"), required=False,
                               help_text=_("Empty means the product type's provisioner."))

    class Meta:
        model = Plan
        fields = "__all__"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["module"].choices = [("", "—"), *((code, code) for code in module_codes())]


class PlanAddonInline(admin.TabularInline):
    """The plan's add-ons; each one's prices are edited on its own page (the change link)."""

    model = PlanAddon
    fields = ("kind", "name", "name_ru", "step", "max_quantity", "is_active", "sort_order", "price_list")
    readonly_fields = ("price_list",)
    extra = 0
    show_change_link = True

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("prices")

    @admin.display(description=_("prices per step"))
    def price_list(self, obj):
        if not obj.pk:
            return "—"
        prices = sorted(obj.prices.all(), key=lambda price: (price.period_months, price.currency))
        return ", ".join(f"{price.period_months}m {price.amount} {price.currency}" for price in prices) or gettext(
            "none yet: open the add-on to price it")


@admin.register(Plan)
class PlanAdmin(admin.ModelAdmin):
    form = PlanAdminForm
    list_display = ("name", "product_type", "module", "cpu_cores", "ram_gb", "disk_gb", "traffic_tb", "stock", "is_active")
    list_filter = ("product_type", "is_active", "locations")
    list_editable = ("stock", "is_active")
    search_fields = ("name", "code")
    filter_horizontal = ("locations",)
    inlines = [PlanPriceInline, PlanAddonInline]


class PlanAddonPriceInline(admin.TabularInline):
    model = PlanAddonPrice
    extra = 1

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("addon")  # each row's __str__ names its add-on


@admin.register(PlanAddon)
class PlanAddonAdmin(admin.ModelAdmin):
    """Add-ons staff sell with a plan: extra resources in steps, extra IPv4, backups, licences, each
    priced per step, period and currency (a price missing in a currency is converted from the plan's
    base currency). Services keep the price they took an add-on at."""

    list_display = ("name", "plan", "kind", "step", "max_quantity", "is_active", "sort_order")
    list_filter = ("kind", "is_active", "plan__product_type")
    list_select_related = ("plan",)
    search_fields = ("name", "plan__name")
    inlines = [PlanAddonPriceInline]


class IpAddressInline(admin.TabularInline):
    model = IpAddress
    fields = ("address", "order", "extra", "allocated_at")
    readonly_fields = ("order", "extra", "allocated_at")
    extra = 0


class AddRangeForm(forms.Form):
    addresses = forms.CharField(label=_("Addresses, one per line"), widget=forms.Textarea(attrs={"rows": 8}))

    def clean_addresses(self):
        from django.core.validators import validate_ipv46_address

        values = [line.strip() for line in self.cleaned_data["addresses"].splitlines() if line.strip()]
        for value in values:
            try:
                validate_ipv46_address(value)
            except ValidationError:
                raise ValidationError(_("Not an IP address: %(value)s") % {"value": value[:60]})
        if len(values) > 4096:
            raise ValidationError(_("Add at most 4096 addresses at once."))
        return values


@admin.register(IpPool)
class IpPoolAdmin(admin.ModelAdmin):
    list_display = ("name", "location", "total", "free")
    list_select_related = ("location",)
    inlines = [IpAddressInline]
    actions = ["add_addresses"]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(
            total_count=Count("addresses"), free_count=Count("addresses", filter=Q(addresses__order__isnull=True)))

    @admin.display(description=_("addresses"), ordering="total_count")
    def total(self, obj):
        return obj.total_count

    @admin.display(description=_("free"), ordering="free_count")
    def free(self, obj):
        return obj.free_count

    @admin.action(description=_("Add addresses to the pool"), permissions=["change"])
    def add_addresses(self, request, queryset):
        if queryset.count() != 1:
            self.message_user(request, gettext("Select one pool."), messages.WARNING)
            return None
        form = AddRangeForm(request.POST if "apply" in request.POST else None)
        if form.is_valid():
            pool = queryset.get()
            existing = set(IpAddress.objects.filter(address__in=form.cleaned_data["addresses"]).values_list("address", flat=True))
            IpAddress.objects.bulk_create(IpAddress(pool=pool, address=a) for a in form.cleaned_data["addresses"] if a not in existing)
            self.message_user(request, gettext("%(n)d address(es) added; %(skipped)d already existed.") % {
                "n": len(form.cleaned_data["addresses"]) - len(existing), "skipped": len(existing)}, messages.SUCCESS)
            return None
        return _intermediate(self, request, queryset, form=form, title=gettext("Add addresses"), action="add_addresses")


_intermediate = admin_action_form


class ExpiringWithinFilter(admin.SimpleListFilter):
    title = _("expiring within")
    parameter_name = "expiring"

    def lookups(self, request, model_admin):
        return [("1", _("1 day")), ("3", _("3 days")), ("7", _("7 days")), ("30", _("30 days"))]

    def queryset(self, request, queryset):
        if self.value() in {"1", "3", "7", "30"}:
            now = timezone.now()
            return queryset.filter(status__in=renewing.RENEWABLE, expires_at__gte=now,
                                   expires_at__lte=now + timedelta(days=int(self.value())))
        return queryset


class OrderEventInline(ReadOnlyInline, admin.TabularInline):
    model = OrderEvent
    # "event" is the sentence the customer sees (action and details together), not the raw key and JSON.
    fields = ("created_at", "event", "from_status", "to_status", "source", "actor")
    ordering = ("-created_at", "-pk")

    @admin.display(description=_("event"))
    def event(self, obj):
        return render_to_string("orders/_event_label.html", {"event": obj}).strip()


class OrderRenewalInline(ReadOnlyInline, admin.TabularInline):
    model = OrderRenewal
    fields = ("period", "periods", "amount", "currency", "status", "invoice_id", "automatic", "starts_at", "ends_at")


class OrderAddonInline(ReadOnlyInline, admin.TabularInline):
    model = OrderAddon
    fields = ("addon", "quantity", "unit_price", "currency", "created_at")


class AddonChangeInline(ReadOnlyInline, admin.TabularInline):
    model = AddonChange
    fields = ("created_at", "addon", "quantity_from", "quantity_to", "amount", "credit", "currency", "status",
              "invoice_id", "credit_notes", "applied_at")


class VirtualMachineInline(ReadOnlyInline, admin.StackedInline):
    model = VirtualMachine
    # Never the initial root password: it is the customer's, shown to them once.
    fields = ("node", "domain", "vmid", "template", "vcpus", "memory_mib", "disk_gib", "state", "bandwidth_mbps",
              "created_at", "deleted_at")


class ProvisioningJobInline(ReadOnlyInline, admin.TabularInline):
    model = ProvisioningJob
    fields = ("action", "state", "attempts", "last_error", "source", "requested_by", "created_at", "finished_at")
    ordering = ("-pk",)


class ReasonForm(forms.Form):
    reason = forms.CharField(label=_("Reason"), max_length=255)


class ExtendForm(ReasonForm):
    days = forms.IntegerField(label=_("Days to add"), min_value=1, max_value=366)


class CompleteForm(forms.Form):
    ip = forms.GenericIPAddressField(label=_("IP address of the server"))


@admin.register(Order)
class OrderAdmin(BackOfficePermissions, admin.ModelAdmin):
    list_display = ("id", "customer", "plan", "ip", "status", "provisioning", "expires_at", "price", "currency", "created_at")
    list_filter = ("status", "provisioning", ExpiringWithinFilter, "plan")
    search_fields = ("=id", "=customer__id", "ip", "plan__name", "customer__users__username")
    list_select_related = ("customer", "plan")
    # State changes only through the actions below (services record events and the staff audit).
    readonly_fields = [f.name for f in Order._meta.fields if f.name != "options"] + ["options_table"]
    exclude = ["options"]  # shown as a labelled table (options_table), not raw JSON
    inlines = [OrderAddonInline, AddonChangeInline, VirtualMachineInline, ProvisioningJobInline, OrderRenewalInline,
               OrderEventInline]
    actions = ["complete_provisioning", "retry_provisioning", "suspend", "unsuspend", "terminate", "extend"]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description=_("options"))
    def options_table(self, obj):
        if not obj.options:
            return "—"
        rows = format_html_join("", '<tr><th scope="row">{}</th><td>{}</td></tr>',
                                ((OPTION_LABELS.get(key, key), value) for key, value in obj.options.items()))
        return format_html('<table data-testid="order-options"><tbody>{}</tbody></table>', rows)

    def _run(self, request, queryset, action, **kwargs):
        done = 0
        for order in queryset.order_by("pk"):
            try:
                action(order=order, actor=request.user, **kwargs)
                done += 1
            except ValidationError as error:
                self.message_user(request, f"#{order.pk}: {' '.join(error.messages)}", messages.WARNING)
        if done:
            self.message_user(request, gettext("%(n)d order(s) updated.") % {"n": done}, messages.SUCCESS)

    def _with_form(self, request, queryset, form_class, action_name, title, run, note=""):
        form = form_class(request.POST if "apply" in request.POST else None)
        if form.is_valid():
            run(form.cleaned_data)
            return None
        return _intermediate(self, request, queryset, form=form, title=title, action=action_name, note=note)

    @admin.action(description=_("Complete provisioning manually (enter the IP)"), permissions=["manage_services"])
    def complete_provisioning(self, request, queryset):
        if queryset.count() != 1:
            self.message_user(request, gettext("Select one order."), messages.WARNING)
            return None
        return self._with_form(request, queryset, CompleteForm, "complete_provisioning", gettext("Complete provisioning"),
                               lambda data: self._run(request, queryset, placing.order_complete_manually, ip=data["ip"]))

    @admin.action(description=_("Retry automatic provisioning"), permissions=["manage_services"])
    def retry_provisioning(self, request, queryset):
        self._run(request, queryset, placing.order_provision_retry)

    @admin.action(description=_("Suspend"), permissions=["manage_services"])
    def suspend(self, request, queryset):
        return self._with_form(request, queryset, ReasonForm, "suspend", gettext("Suspend orders"),
                               lambda data: self._run(request, queryset, staff.order_suspend, reason=data["reason"]))

    @admin.action(description=_("Unsuspend"), permissions=["manage_services"])
    def unsuspend(self, request, queryset):
        self._run(request, queryset, staff.order_unsuspend)

    @admin.action(description=_("Terminate (releases the IP)"), permissions=["manage_services"])
    def terminate(self, request, queryset):
        return self._with_form(request, queryset, ReasonForm, "terminate", gettext("Terminate orders"),
                               lambda data: self._run(request, queryset, staff.order_terminate, reason=data["reason"]),
                               note=gettext("The service ends now: its virtual machine and disks are deleted (by a provisioning "
                                            "job) and its pool address is released. This cannot be undone."))

    @admin.action(description=_("Extend by N days (free)"), permissions=["manage_services"])
    def extend(self, request, queryset):
        return self._with_form(request, queryset, ExtendForm, "extend", gettext("Extend orders"),
                               lambda data: self._run(request, queryset, staff.order_extend, days=data["days"], reason=data["reason"]))


# --- provisioning: nodes, OS templates, jobs --------------------------------------------------------

class OsTemplateInline(admin.TabularInline):
    model = OsTemplate
    fields = ("os_image", "volume", "is_active")
    extra = 1


class HypervisorNodeForm(forms.ModelForm):
    """The Proxmox VE API token's secret can be replaced, never read back; left blank it stays as it is."""

    token_secret = forms.CharField(label=_("API token secret"), required=False, max_length=200,
                                   widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
                                   help_text=_("Stored, never shown. Leave blank to keep the current one."))

    class Meta:
        model = HypervisorNode
        fields = "__all__"

    def clean_token_secret(self):
        return self.cleaned_data["token_secret"] or (self.instance.token_secret if self.instance.pk else "")


@admin.register(HypervisorNode)
class HypervisorNodeAdmin(admin.ModelAdmin):
    form = HypervisorNodeForm
    list_display = ("name", "kind", "uri", "location", "vcpu_use", "ram_use", "disk_use", "is_active", "check_ok", "checked_at")
    list_filter = ("kind", "is_active", "location", "check_ok")
    readonly_fields = ("checked_at", "check_ok", "check_message")
    fieldsets = [
        (None, {"fields": ("name", "kind", "uri", "location", "is_active")}),
        (_("Capacity"), {"fields": ("cpu_capacity", "ram_capacity_mib", "disk_capacity_gib")}),
        (_("Storage and network"), {"fields": ("storage_pool", "network", "bridge")}),
        (_("Proxmox VE API"), {"fields": ("pve_node", "token_id", "token_secret", "ca_certificate")}),
        (_("Health"), {"fields": ("checked_at", "check_ok", "check_message")}),
    ]
    inlines = [OsTemplateInline]
    actions = ["check_health"]

    def get_fieldsets(self, request, obj=None):
        """Staff who may only view nodes would see read-only fields as text: the secret is left out."""
        if self.has_change_permission(request, obj):
            return self.fieldsets
        return [(name, {**options, "fields": tuple(f for f in options["fields"] if f != "token_secret")})
                for name, options in self.fieldsets]

    def get_queryset(self, request):
        from django.db.models import Sum

        live = Q(vms__deleted_at__isnull=True)
        return super().get_queryset(request).select_related("location").annotate(
            used_vcpus=Sum("vms__vcpus", filter=live), used_ram=Sum("vms__memory_mib", filter=live),
            used_disk=Sum("vms__disk_gib", filter=live))

    @staticmethod
    def _use(used, capacity, unit=""):
        used = used or 0
        return gettext("%(used)s of %(capacity)s%(unit)s used, %(free)s free") % {
            "used": used, "capacity": capacity, "unit": unit, "free": capacity - used}

    @admin.display(description=_("vCPU"))
    def vcpu_use(self, obj):
        return self._use(obj.used_vcpus, obj.cpu_capacity)

    @admin.display(description=_("RAM"))
    def ram_use(self, obj):
        return self._use(obj.used_ram, obj.ram_capacity_mib, " MiB")

    @admin.display(description=_("disk"))
    def disk_use(self, obj):
        return self._use(obj.used_disk, obj.disk_capacity_gib, " GiB")

    @admin.action(description=_("Check health (connect, read host and storage pool)"), permissions=["change"])
    def check_health(self, request, queryset):
        from .provisioning.registry import get_module

        for node in queryset.order_by("pk"):
            ok, message = get_module(node.kind).node_health(node)
            HypervisorNode.objects.filter(pk=node.pk).update(check_ok=ok, check_message=message[:255],
                                                             checked_at=timezone.now())
            self.message_user(request, f"{node.name}: {message}", messages.SUCCESS if ok else messages.ERROR)


class ProvisioningJobAdmin(LastErrorColumn, admin.ModelAdmin):
    """The jobs list: filter by state/action/module, retry failed ones. Rows change only through jobs."""

    list_display = ("id", "order", "action", "module", "state", "attempts", "short_error", "next_attempt_at",
                    "requested_by", "created_at", "finished_at")
    list_filter = ("state", "action", "module", "source")
    search_fields = ("=order__id", "=id")
    list_select_related = ("order__plan", "requested_by")
    readonly_fields = [f.name for f in ProvisioningJob._meta.fields]
    actions = ["retry"]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.action(description=_("Retry (fresh attempts, runs now)"), permissions=["change"])
    def retry(self, request, queryset):
        ids = list(queryset.values_list("pk", flat=True))
        queued = provisioning_jobs.jobs_retry(job_ids=ids, actor=request.user)
        self.message_user(request, gettext("%(queued)d of %(selected)d selected jobs queued again (only failed or "
                                           "cancelled ones are retried).") % {"queued": queued, "selected": len(ids)},
                          messages.SUCCESS if queued else messages.WARNING)


admin.site.register(ProvisioningJob, ProvisioningJobAdmin)


@admin.register(TrafficOverage)
class TrafficOverageAdmin(admin.ModelAdmin):
    """Services that passed their traffic quota, one row per period (written by the usage beat job)."""

    list_display = ("order", "period_start", "used_gib", "quota_gib", "action", "created_at")
    list_filter = ("action",)
    search_fields = ("=order__id",)
    list_select_related = ("order__plan",)
    readonly_fields = [f.name for f in TrafficOverage._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description=_("traffic used, GiB"), ordering="used_bytes")
    def used_gib(self, obj):
        return obj.used_bytes // 1024 ** 3

    @admin.display(description=_("quota, GiB"), ordering="quota_bytes")
    def quota_gib(self, obj):
        return obj.quota_bytes // 1024 ** 3


class PromoRedemptionInline(ReadOnlyInline, admin.TabularInline):
    model = PromoRedemption
    fields = ("order", "customer", "created_at", "released_at")


@admin.register(PromoCode)
class PromoCodeAdmin(admin.ModelAdmin):
    list_display = ("code", "kind", "value", "currency", "periods", "valid_from", "valid_until", "uses", "max_uses", "is_active")
    list_filter = ("is_active", "kind")
    search_fields = ("code", "description")
    filter_horizontal = ("plans",)
    inlines = [PromoRedemptionInline]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(
            use_count=Count("redemptions", filter=Q(redemptions__released_at__isnull=True)))

    @admin.display(description=_("uses"), ordering="use_count")
    def uses(self, obj):
        return obj.use_count
