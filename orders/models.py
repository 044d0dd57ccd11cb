"""Catalogue (product types, plans, prices), IP pools, and customers' orders with their history.

Invoices live in billing; orders refer to them by id (`invoice_id`) and by the invoice `reference`
string ("order:<id>…"), so the two apps' migrations stay independent and billing never imports orders.
"""
from decimal import Decimal

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import F, Q
from django.template.loader import render_to_string
from django.utils.translation import gettext_lazy as _

from core.choices import ChoiceLabels

from .order_fields import ORDER_FIELDS

PERIOD_CHOICES = [
    (1, _("1 month")),
    (3, _("3 months")),
    (6, _("6 months")),
    (12, _("12 months")),
]
PERIOD_MONTHS = tuple(months for months, _label in PERIOD_CHOICES)


class Location(models.Model):
    code = models.SlugField(_("code"), max_length=32, unique=True)
    name = models.CharField(_("name"), max_length=100)

    class Meta:
        verbose_name = _("location")
        verbose_name_plural = _("locations")
        ordering = ["name"]

    def __str__(self) -> str:
        return str(self.name)


class ProductType(models.Model):
    """A kind of service (VPS/VDS, dedicated server, …): which order-form fields it asks, how it is provisioned."""

    class Provisioner(models.TextChoices):
        MANUAL = "manual", _("Manual (staff enter the IP address)")
        IP_POOL = "ip_pool", _("Automatic from an IP pool")
        LIBVIRT = "libvirt", _("Virtual machine on a libvirt/KVM node")
        PROXMOX = "proxmox", _("Virtual machine on a Proxmox VE node")

    code = models.SlugField(_("code"), max_length=32, unique=True)
    name = models.CharField(_("name"), max_length=100)
    name_ru = models.CharField(_("name (Russian)"), max_length=100, blank=True, help_text=_("Empty: the English name."))
    description = models.TextField(_("description"), blank=True)
    description_ru = models.TextField(_("description (Russian)"), blank=True, help_text=_("Empty: the English text."))
    provisioner = models.CharField(_("provisioner"), max_length=16, choices=Provisioner.choices, default=Provisioner.MANUAL)
    order_fields = models.JSONField(
        _("order form fields"), default=list, blank=True,
        help_text=_("Keys of the fields the order form asks for: %(keys)s.") % {"keys": ", ".join(ORDER_FIELDS)},
    )
    sort_order = models.PositiveIntegerField(_("sort order"), default=0)
    is_active = models.BooleanField(_("active"), default=True)

    class Meta:
        verbose_name = _("product type")
        verbose_name_plural = _("product types")
        ordering = ["sort_order", "name"]

    def __str__(self) -> str:
        return str(self.name)

    def clean(self) -> None:
        if not isinstance(self.order_fields, list) or any(key not in ORDER_FIELDS for key in self.order_fields):
            raise ValidationError({"order_fields": _("Use a list of known field keys: %(keys)s.") % {"keys": ", ".join(ORDER_FIELDS)}})


class OsImage(models.Model):
    name = models.CharField(_("name"), max_length=100)
    product_types = models.ManyToManyField(ProductType, related_name="os_images", verbose_name=_("product types"))
    is_active = models.BooleanField(_("active"), default=True)
    sort_order = models.PositiveIntegerField(_("sort order"), default=0)

    class Meta:
        verbose_name = _("OS image")
        verbose_name_plural = _("OS images")
        ordering = ["sort_order", "name"]

    def __str__(self) -> str:
        return self.name


class IpPool(models.Model):
    name = models.CharField(_("name"), max_length=100, unique=True)
    location = models.ForeignKey(Location, on_delete=models.PROTECT, null=True, blank=True, verbose_name=_("location"))
    # Network settings written into a VM's cloud-init network config (modules that create VMs).
    prefix_length = models.PositiveSmallIntegerField(_("prefix length"), default=24)
    gateway = models.GenericIPAddressField(_("gateway"), null=True, blank=True)
    nameservers = models.CharField(_("DNS servers"), max_length=200, blank=True, help_text=_("Space-separated."))

    class Meta:
        verbose_name = _("IP pool")
        verbose_name_plural = _("IP pools")
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Plan(models.Model):
    class OverQuotaAction(models.TextChoices):
        NOTICE = "notice", _("Notice only")
        THROTTLE = "throttle", _("Throttle to the speed below")

    product_type = models.ForeignKey(ProductType, on_delete=models.PROTECT, related_name="plans", verbose_name=_("product type"))
    code = models.SlugField(_("code"), max_length=48, unique=True)
    name = models.CharField(_("name"), max_length=100)
    name_ru = models.CharField(_("name (Russian)"), max_length=100, blank=True, help_text=_("Empty: the English name."))
    cpu_cores = models.PositiveSmallIntegerField(_("CPU cores"))
    cpu_model = models.CharField(_("CPU model"), max_length=100, blank=True)
    ram_gb = models.PositiveIntegerField(_("RAM, GB"))
    disk_gb = models.PositiveIntegerField(_("disk, GB"))
    disk_type = models.CharField(_("disk type"), max_length=20, default="NVMe")
    traffic_tb = models.DecimalField(_("traffic, TB/month"), max_digits=8, decimal_places=2, null=True, blank=True,
                                     help_text=_("Empty means unmetered."))
    port_mbps = models.PositiveIntegerField(_("port speed, Mbit/s"), default=1000)
    over_quota_action = models.CharField(_("over-quota action"), max_length=16, choices=OverQuotaAction.choices,
                                         default=OverQuotaAction.NOTICE,
                                         help_text=_("What happens once a server's traffic passes the quota in a period: "
                                                     "the customer is told once either way."))
    over_quota_mbps = models.PositiveIntegerField(_("throttled speed, Mbit/s"), null=True, blank=True,
                                                  help_text=_("The port speed past the quota, for the throttle action."))
    locations = models.ManyToManyField(Location, related_name="plans", verbose_name=_("locations"))
    ip_pool = models.ForeignKey(IpPool, on_delete=models.PROTECT, null=True, blank=True, related_name="plans",
                                verbose_name=_("IP pool"), help_text=_("Used when the product type provisions from a pool."))
    module = models.CharField(_("provisioning module"), max_length=32, blank=True,
                              help_text=_("Empty means the product type's provisioner."))
    module_settings = models.JSONField(_("module settings"), default=dict, blank=True,
                                       help_text=_("Options of the provisioning module, e.g. {\"memory_mib\": 512} for libvirt."))
    base_currency = models.CharField(_("base currency"), max_length=3, default=settings.DEFAULT_CURRENCY,
                                     help_text=_("Prices missing in another currency are converted from this one at the current rate."))
    setup_fee = models.DecimalField(_("setup fee"), max_digits=14, decimal_places=2, default=Decimal("0"),
                                    help_text=_("One-off, in the base currency, charged with the first period."))
    stock = models.PositiveIntegerField(_("stock"), null=True, blank=True, help_text=_("Empty means unlimited."))
    is_active = models.BooleanField(_("available for order"), default=True)
    sort_order = models.PositiveIntegerField(_("sort order"), default=0)

    class Meta:
        verbose_name = _("plan")
        verbose_name_plural = _("plans")
        ordering = ["product_type__sort_order", "sort_order", "pk"]
        constraints = [
            models.CheckConstraint(condition=Q(setup_fee__gte=0), name="plan_setup_fee_gte_0"),
            models.CheckConstraint(condition=~Q(over_quota_action="throttle") | Q(over_quota_mbps__isnull=False, over_quota_mbps__gte=1),
                                   name="plan_throttle_has_speed"),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def in_stock(self) -> bool:
        return self.stock is None or self.stock > 0

    @property
    def module_code(self) -> str:
        return self.module or self.product_type.provisioner

    def clean(self) -> None:
        from .provisioning.registry import get_module, module_codes

        if self.module and self.module not in module_codes():
            raise ValidationError({"module": _("Unknown provisioning module: %(code)s.") % {"code": self.module}})
        if not isinstance(self.module_settings, dict):
            raise ValidationError({"module_settings": _("Use a JSON object.")})
        if self.product_type_id:
            errors = get_module(self.module_code).settings_errors(self.module_settings)
            if errors:
                raise ValidationError({"module_settings": errors})
        if self.over_quota_action == self.OverQuotaAction.THROTTLE:
            if not self.over_quota_mbps:
                raise ValidationError({"over_quota_mbps": _("Give the speed the server is throttled to.")})
            if self.port_mbps and self.over_quota_mbps >= self.port_mbps:
                raise ValidationError({"over_quota_mbps": _("The throttled speed must be below the port speed.")})
            if self.traffic_tb is None:
                raise ValidationError({"over_quota_action": _("An unmetered plan has no quota to pass: give the traffic first.")})


class PeriodPrice(models.Model):
    """A price of one billing period in one currency: a plan's (`PlanPrice`) or one step of an add-on's
    (`PlanAddonPrice`), both read by one rule (`orders.pricing`: the stored price, else the plan's base
    currency's converted). A subclass adds the foreign key to what it prices (`priced_field`) and its unique
    (priced, period, currency) constraint."""

    priced_field = ""  # the subclass's foreign key to what it prices

    period_months = models.PositiveSmallIntegerField(_("period"), choices=PERIOD_CHOICES)
    currency = models.CharField(_("currency"), max_length=3, choices=settings.CURRENCY_CHOICES)
    amount = models.DecimalField(_("price per period"), max_digits=14, decimal_places=2)

    class Meta:
        abstract = True
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="%(class)s_amount_gt_0"),
            models.CheckConstraint(condition=Q(period_months__in=PERIOD_MONTHS), name="%(class)s_known_period"),
        ]

    def __str__(self) -> str:
        return f"{getattr(self, self.priced_field)} {self.period_months}m {self.amount} {self.currency}"


class PlanPrice(PeriodPrice):
    priced_field = "plan"

    plan = models.ForeignKey(Plan, on_delete=models.CASCADE, related_name="prices", verbose_name=_("plan"))

    class Meta(PeriodPrice.Meta):
        verbose_name = _("plan price")
        verbose_name_plural = _("plan prices")
        ordering = ["plan", "period_months", "currency"]
        constraints = [
            models.UniqueConstraint(fields=["plan", "period_months", "currency"], name="planprice_unique_period_currency"),
            *PeriodPrice.Meta.constraints,
        ]


class PlanAddon(models.Model):
    """A priced option sold with a plan (the "configurable options" of WHMCS, BILLmanager's add-ons):
    extra vCPU, RAM or disk in steps, extra IPv4 addresses, backups, a control-panel licence. A
    customer takes 0..`max_quantity` steps at order time or later; each step is priced per period
    and currency like the plan (`PlanAddonPrice`, converted from the plan's base currency when no
    price is stored in the customer's)."""

    class Kind(models.TextChoices):
        CPU = "cpu", _("Extra vCPU")
        RAM = "ram", _("Extra RAM")
        DISK = "disk", _("Extra disk")
        IPV4 = "ipv4", _("Extra IPv4 addresses")
        BACKUPS = "backups", _("Backups")
        CONTROL_PANEL = "control_panel", _("Control panel licence")

    plan = models.ForeignKey(Plan, on_delete=models.CASCADE, related_name="addons", verbose_name=_("plan"))
    kind = models.CharField(_("kind"), max_length=16, choices=Kind.choices)
    name = models.CharField(_("name"), max_length=100)
    name_ru = models.CharField(_("name (Russian)"), max_length=100, blank=True, help_text=_("Empty: the English name."))
    step = models.PositiveIntegerField(
        _("units per step"), default=1,
        help_text=_("What one step adds: vCPUs, GB of RAM, GB of disk or IPv4 addresses; 1 for backups and licences."))
    max_quantity = models.PositiveSmallIntegerField(_("most steps per service"), default=1)
    is_active = models.BooleanField(_("available"), default=True)
    sort_order = models.PositiveIntegerField(_("sort order"), default=0)

    class Meta:
        verbose_name = _("plan add-on")
        verbose_name_plural = _("plan add-ons")
        ordering = ["plan", "sort_order", "pk"]
        constraints = [
            models.CheckConstraint(condition=Q(step__gte=1), name="planaddon_step_gte_1"),
            models.CheckConstraint(condition=Q(max_quantity__gte=1) & Q(max_quantity__lte=64), name="planaddon_max_quantity_range"),
            # Resources add up: one add-on of each resource kind per plan.
            models.UniqueConstraint(fields=["plan", "kind"], condition=Q(kind__in=["cpu", "ram", "disk", "ipv4"]),
                                    name="planaddon_one_resource_kind_per_plan"),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def is_resource(self) -> bool:
        return self.kind in RESOURCE_ADDON_KINDS

    def clean(self) -> None:
        if self.kind == self.Kind.IPV4 and self.plan_id and self.plan.ip_pool_id is None:
            raise ValidationError({"kind": _("Extra addresses come from the plan's IP pool: choose a pool for the plan first.")})
        if self.kind in (self.Kind.BACKUPS, self.Kind.CONTROL_PANEL) and self.step != 1:
            raise ValidationError({"step": _("Backups and licences are sold one step at a time: use 1.")})


RESOURCE_ADDON_KINDS = (PlanAddon.Kind.CPU, PlanAddon.Kind.RAM, PlanAddon.Kind.DISK, PlanAddon.Kind.IPV4)


class PlanAddonPrice(PeriodPrice):
    """The price of one step of an add-on per billing period, in a currency."""

    priced_field = "addon"

    addon = models.ForeignKey(PlanAddon, on_delete=models.CASCADE, related_name="prices", verbose_name=_("add-on"))
    # The base's column; only its label says it prices one step.
    amount = models.DecimalField(_("price of one step per period"), max_digits=14, decimal_places=2)

    class Meta(PeriodPrice.Meta):
        verbose_name = _("add-on price")
        verbose_name_plural = _("add-on prices")
        ordering = ["addon", "period_months", "currency"]
        constraints = [
            models.UniqueConstraint(fields=["addon", "period_months", "currency"], name="planaddonprice_unique_period_currency"),
            *PeriodPrice.Meta.constraints,
        ]


class Order(ChoiceLabels, models.Model):
    """A customer's service. One row for its whole life; periods are counted in `current_period`."""

    class Status(models.TextChoices):
        PENDING = "pending", _("Pending")
        ACTIVE = "active", _("Active")
        EXPIRED = "expired", _("Expired")
        SUSPENDED = "suspended", _("Suspended")
        TERMINATED = "terminated", _("Terminated")
        CANCELLED = "cancelled", _("Cancelled")

    class SuspensionReason(models.TextChoices):
        NONE = "", _("Not suspended")
        NON_PAYMENT = "non_payment", _("Not renewed in time")
        STAFF = "staff", _("Suspended by staff")

    class Provisioning(models.TextChoices):
        NOT_STARTED = "not_started", _("Not started")
        WAITING_STAFF = "waiting_staff", _("Waiting for staff")
        IN_PROGRESS = "in_progress", _("Being set up")
        FAILED = "failed", _("Setup failed")
        DONE = "done", _("Done")

    # Indexed as the lead of (customer, -created_at) and (customer, expires_at, id).
    customer = models.ForeignKey("accounts.Customer", on_delete=models.PROTECT, related_name="orders", verbose_name=_("customer"),
                                 db_index=False)
    plan = models.ForeignKey(Plan, on_delete=models.PROTECT, related_name="orders", verbose_name=_("plan"))
    period_months = models.PositiveSmallIntegerField(_("billing period"), choices=PERIOD_CHOICES)
    # Recurring price of one period, fixed when ordered (or when the plan changes); catalogue price
    # changes do not touch existing services.
    price = models.DecimalField(_("price per period"), max_digits=14, decimal_places=2)
    currency = models.CharField(_("currency"), max_length=3)
    # The add-ons' part of a period's price (sum of `OrderAddon.amount`, same currency), kept by the
    # add-on services: renewals charge `price + addons_price` and list pages read it without a join.
    addons_price = models.DecimalField(_("add-ons per period"), max_digits=14, decimal_places=2, default=Decimal("0"))
    status = models.CharField(_("status"), max_length=16, choices=Status.choices, default=Status.PENDING)  # indexed: (status, expires_at)
    # Why a suspended order is suspended: paying lifts a non-payment suspension, only staff lift theirs.
    suspension_reason = models.CharField(_("suspension reason"), max_length=16, choices=SuspensionReason.choices,
                                         default=SuspensionReason.NONE, blank=True)
    provisioning = models.CharField(_("provisioning"), max_length=16, choices=Provisioning.choices, default=Provisioning.NOT_STARTED)
    provisioning_note = models.CharField(_("provisioning note"), max_length=255, blank=True)
    ip = models.GenericIPAddressField(_("IP address"), null=True, blank=True)
    options = models.JSONField(_("options"), default=dict, blank=True)
    created_at = models.DateTimeField(_("created"), auto_now_add=True, db_index=True)
    paid_at = models.DateTimeField(_("paid"), null=True, blank=True)
    activated_at = models.DateTimeField(_("activated"), null=True, blank=True)
    # Expiry is computed from an anchor so month ends don't drift: anchor + anchor_months months.
    anchor_at = models.DateTimeField(null=True, blank=True)
    anchor_months = models.PositiveIntegerField(default=0)
    period_started_at = models.DateTimeField(_("current period started"), null=True, blank=True)
    expires_at = models.DateTimeField(_("expires on"), null=True, blank=True, db_index=True)
    current_period = models.PositiveIntegerField(_("current period"), default=0)
    # None follows the account default (Customer.auto_renew_default).
    auto_renew = models.BooleanField(_("auto-renewal"), null=True, blank=True)
    cancel_at_period_end = models.BooleanField(_("cancel at period end"), default=False)
    scheduled_plan = models.ForeignKey(Plan, on_delete=models.PROTECT, null=True, blank=True, related_name="+",
                                       verbose_name=_("plan from next renewal"))
    invoice_id = models.BigIntegerField(_("order invoice"), null=True, blank=True)
    idempotency_key = models.CharField(max_length=64, null=True, blank=True, unique=True)
    expiry_notice_days = models.PositiveSmallIntegerField(null=True, blank=True)  # smallest "expires in N days" sent this period
    ended_at = models.DateTimeField(_("ended"), null=True, blank=True)

    class Meta:
        verbose_name = _("order")
        verbose_name_plural = _("orders")
        ordering = ["-pk"]
        indexes = [
            models.Index(fields=["customer", "-created_at"]),
            models.Index(fields=["status", "expires_at"]),
            # A customer's services by expiry (the dashboard's list, the forecast's due orders, the orders page
            # sorted by expiry), read in index order instead of sorting all of a heavy customer's orders.
            models.Index(fields=["customer", "expires_at", "id"], name="order_customer_expiry"),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(price__gte=0), name="order_price_gte_0"),
            models.CheckConstraint(condition=Q(addons_price__gte=0), name="order_addons_price_gte_0"),
            models.CheckConstraint(condition=Q(period_months__in=PERIOD_MONTHS), name="order_known_period"),
            models.CheckConstraint(
                condition=Q(status__in=["pending", "cancelled"]) | Q(expires_at__isnull=False),
                name="order_started_has_expiry",
            ),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.plan}"

    @property
    def reference(self) -> str:
        return f"order:{self.pk}"

    @property
    def period_total(self) -> Decimal:
        """What one period costs: the plan price plus the add-ons."""
        return self.price + self.addons_price


class OrderEvent(models.Model):
    """History of an order: every transition with who or what caused it."""

    class Source(models.TextChoices):
        CUSTOMER = "customer", _("Customer")
        STAFF = "staff", _("Staff")
        SYSTEM = "system", _("System")
        PAYMENT = "payment", _("Payment")

    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="events", db_index=False)  # indexed: (order, -created_at)
    created_at = models.DateTimeField(auto_now_add=True)
    action = models.CharField(max_length=32)
    from_status = models.CharField(max_length=16, blank=True)
    to_status = models.CharField(max_length=16, blank=True)
    source = models.CharField(max_length=16, choices=Source.choices)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    details = models.JSONField(default=dict, blank=True)

    class Meta:
        verbose_name = _("order event")
        verbose_name_plural = _("order events")
        ordering = ["-created_at", "-pk"]
        indexes = [models.Index(fields=["order", "-created_at"])]

    def __str__(self) -> str:
        # The customer-facing sentence ("Renewed for 1 period(s)"), e.g. as the admin inline's row title.
        return render_to_string("orders/_event_label.html", {"event": self}).strip()


class OrderRenewal(models.Model):
    """One renewal of an order starting at period `period` and covering `periods` periods.

    The unique (order, period) pair makes a second charge for the same period impossible whichever
    path (web, job, worker, gateway) gets there first.
    """

    class Status(models.TextChoices):
        PENDING = "pending", _("Awaiting payment")
        PAID = "paid", _("Paid")

    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="renewals", db_index=False)  # indexed: unique (order, period)
    period = models.PositiveIntegerField()
    periods = models.PositiveSmallIntegerField(default=1)
    amount = models.DecimalField(max_digits=14, decimal_places=2)
    currency = models.CharField(max_length=3)
    plan = models.ForeignKey(Plan, on_delete=models.PROTECT, related_name="+")
    # The add-ons this renewal charges for (part of `amount`): [{"addon": id, "quantity": n,
    # "unit_price": "1.00"}], so its invoice has a line per add-on and a later change makes it stale.
    addons = models.JSONField(default=list, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    invoice_id = models.BigIntegerField(null=True, blank=True, db_index=True)
    automatic = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    paid_at = models.DateTimeField(null=True, blank=True)
    starts_at = models.DateTimeField(null=True, blank=True)
    ends_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = _("order renewal")
        verbose_name_plural = _("order renewals")
        constraints = [
            models.UniqueConstraint(fields=["order", "period"], name="orderrenewal_one_per_period"),
            models.CheckConstraint(condition=Q(periods__gte=1) & Q(periods__lte=36), name="orderrenewal_periods_range"),
            models.CheckConstraint(condition=Q(amount__gte=0), name="orderrenewal_amount_gte_0"),
        ]

    def __str__(self) -> str:
        return _("Renewal of #%(order)s from period %(period)s") % {"order": self.order_id, "period": self.period}


class PlanChange(models.Model):
    """An upgrade awaiting payment of its prorated invoice (or applied once it is paid)."""

    class Status(models.TextChoices):
        PENDING = "pending", _("Awaiting payment")
        APPLIED = "applied", _("Applied")
        CANCELLED = "cancelled", _("Cancelled")

    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="plan_changes")
    from_plan = models.ForeignKey(Plan, on_delete=models.PROTECT, related_name="+")
    to_plan = models.ForeignKey(Plan, on_delete=models.PROTECT, related_name="+")
    # The period it was priced for: paying an old quote after a renewal must not apply a stale amount.
    period = models.PositiveIntegerField()
    new_price = models.DecimalField(max_digits=14, decimal_places=2)
    amount = models.DecimalField(max_digits=14, decimal_places=2)
    currency = models.CharField(max_length=3)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    invoice_id = models.BigIntegerField(null=True, blank=True, db_index=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.CheckConstraint(condition=Q(amount__gte=0), name="planchange_amount_gte_0")]


class OrderAddon(models.Model):
    """An add-on a service holds: `quantity` steps at `unit_price` a step per period, in the order's
    currency. The price is fixed when the add-on is first taken (as `Order.price`); more steps of it
    later cost the same. Removing every step deletes the row (the history is in `AddonChange` and
    the order's events)."""

    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="addons", verbose_name=_("order"))
    addon = models.ForeignKey(PlanAddon, on_delete=models.PROTECT, related_name="+", verbose_name=_("add-on"))
    quantity = models.PositiveSmallIntegerField(_("steps"))
    unit_price = models.DecimalField(_("price of one step per period"), max_digits=14, decimal_places=2)
    currency = models.CharField(_("currency"), max_length=3)
    created_at = models.DateTimeField(_("added"), auto_now_add=True)

    class Meta:
        verbose_name = _("service add-on")
        verbose_name_plural = _("service add-ons")
        ordering = ["order", "addon__sort_order", "addon_id"]
        constraints = [
            models.UniqueConstraint(fields=["order", "addon"], name="orderaddon_one_row_per_addon"),
            models.CheckConstraint(condition=Q(quantity__gte=1), name="orderaddon_quantity_gte_1"),
            models.CheckConstraint(condition=Q(unit_price__gte=0), name="orderaddon_unit_price_gte_0"),
        ]

    def __str__(self) -> str:
        return f"{self.addon} × {self.quantity}"

    @property
    def amount(self) -> Decimal:
        return self.unit_price * self.quantity

    @property
    def label(self) -> str:
        """"Extra RAM: 4 GB" in the active language (`orders.addons.describe`)."""
        from .addons import describe

        return describe(self.addon, self.quantity)


class AddonChange(models.Model):
    """A change of a running service's add-on from `quantity_from` to `quantity_to` steps. More steps
    are invoiced (the prorated `amount`) and applied when the invoice is paid, like an upgrade; fewer
    are applied at once and the unused part is credited (`credit`, with credit notes)."""

    class Status(models.TextChoices):
        PENDING = "pending", _("Awaiting payment")
        APPLIED = "applied", _("Applied")
        CANCELLED = "cancelled", _("Cancelled")

    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="addon_changes")
    addon = models.ForeignKey(PlanAddon, on_delete=models.PROTECT, related_name="+")
    quantity_from = models.PositiveSmallIntegerField()
    quantity_to = models.PositiveSmallIntegerField()
    unit_price = models.DecimalField(max_digits=14, decimal_places=2)
    # The period it was priced for: paying an old quote after a renewal is applied and noted for staff.
    period = models.PositiveIntegerField()
    amount = models.DecimalField(max_digits=14, decimal_places=2, default=Decimal("0"))
    credit = models.DecimalField(max_digits=14, decimal_places=2, default=Decimal("0"))
    currency = models.CharField(max_length=3)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    invoice_id = models.BigIntegerField(null=True, blank=True, db_index=True)
    credit_notes = models.JSONField(default=list, blank=True)  # numbers of the credit notes of `credit`
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    applied_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = _("add-on change")
        verbose_name_plural = _("add-on changes")
        ordering = ["-pk"]
        constraints = [
            models.CheckConstraint(condition=Q(amount__gte=0) & Q(credit__gte=0), name="addonchange_amounts_gte_0"),
            models.CheckConstraint(condition=~Q(quantity_from=F("quantity_to")), name="addonchange_changes_quantity"),
        ]


class IpAddress(models.Model):
    pool = models.ForeignKey(IpPool, on_delete=models.PROTECT, related_name="addresses", verbose_name=_("pool"))
    address = models.GenericIPAddressField(_("address"), unique=True)
    order = models.ForeignKey(Order, on_delete=models.SET_NULL, null=True, blank=True, related_name="pool_addresses",
                              verbose_name=_("order"))
    # An address bought as an add-on (extra IPv4); the order's own address is the one without it.
    extra = models.BooleanField(_("extra address"), default=False)
    allocated_at = models.DateTimeField(_("allocated"), null=True, blank=True)

    class Meta:
        verbose_name = _("IP address")
        verbose_name_plural = _("IP addresses")
        ordering = ["pool", "pk"]
        indexes = [models.Index(fields=["pool"], condition=Q(order__isnull=True), name="ipaddress_free_in_pool")]
        constraints = [
            models.UniqueConstraint(fields=["order"], condition=Q(extra=False), name="ipaddress_one_main_per_order"),
            models.CheckConstraint(condition=Q(order__isnull=False) | Q(extra=False), name="ipaddress_free_is_not_extra"),
        ]

    def __str__(self) -> str:
        return self.address


# --- provisioning: hypervisor nodes, OS templates, virtual machines and jobs ----------------------

class HypervisorNode(models.Model):
    """A host VMs are placed on: a KVM host driven through libvirt, or a Proxmox VE node driven through
    its HTTP API (`kind`). Capacity is what staff allow to be sold."""

    class Kind(models.TextChoices):
        LIBVIRT = "libvirt", _("libvirt / KVM")
        PROXMOX = "proxmox", _("Proxmox VE")

    name = models.CharField(_("name"), max_length=100, unique=True)
    kind = models.CharField(_("kind"), max_length=16, choices=Kind.choices, default=Kind.LIBVIRT)
    uri = models.CharField(_("connection URI"), max_length=255,
                           help_text=_("libvirt: qemu:///system for this host, qemu+ssh://user@host/system for a remote one. "
                                       "Proxmox VE: the API URL, https://pve.example.com:8006."))
    # Proxmox VE only: the node's name in the cluster and an API token (user@realm!name plus its secret).
    pve_node = models.CharField(_("Proxmox node name"), max_length=100, blank=True)
    token_id = models.CharField(_("API token ID"), max_length=200, blank=True,
                                help_text=_("user@realm!token-name, e.g. portal@pve!provisioning."))
    # Write-only in admin (never shown again once saved); never logged or put in a job's error.
    token_secret = models.CharField(_("API token secret"), max_length=200, blank=True)
    ca_certificate = models.TextField(_("TLS CA certificate (PEM)"), blank=True,
                                      help_text=_("The node's CA (e.g. /etc/pve/pve-root-ca.pem). Empty: the system's trusted CAs."))
    location = models.ForeignKey(Location, on_delete=models.PROTECT, null=True, blank=True, verbose_name=_("location"),
                                 help_text=_("Empty: serves every location."))
    cpu_capacity = models.PositiveIntegerField(_("vCPU capacity"))
    ram_capacity_mib = models.PositiveIntegerField(_("RAM capacity, MiB"))
    disk_capacity_gib = models.PositiveIntegerField(_("disk capacity, GiB"))
    storage_pool = models.CharField(_("storage pool"), max_length=100, default="default")
    network = models.CharField(_("libvirt network"), max_length=100, blank=True)
    bridge = models.CharField(_("bridge"), max_length=100, blank=True,
                              help_text=_("Used instead of a libvirt network when set; Proxmox VE: the VMs' bridge, e.g. vmbr0."))
    is_active = models.BooleanField(_("accepts new VMs"), default=True)
    checked_at = models.DateTimeField(_("last health check"), null=True, blank=True)
    check_ok = models.BooleanField(_("healthy"), null=True, blank=True)
    check_message = models.CharField(_("health check result"), max_length=255, blank=True)

    class Meta:
        verbose_name = _("hypervisor node")
        verbose_name_plural = _("hypervisor nodes")
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        import re
        from urllib.parse import urlsplit

        if self.kind == self.Kind.PROXMOX:
            errors = {}
            url = urlsplit(self.uri or "")
            if url.scheme != "https" or not url.hostname or url.path not in ("", "/") or url.query:
                errors["uri"] = _("Give the API URL as https://host:8006.")
            if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9.-]*", self.pve_node or ""):
                errors["pve_node"] = _("Give the node's name as Proxmox VE shows it.")
            if not re.fullmatch(r"[^\s@!]+@[^\s@!]+![A-Za-z][A-Za-z0-9._-]*", self.token_id or ""):
                errors["token_id"] = _("Use the form user@realm!token-name.")
            if not self.token_secret:
                errors["token_secret"] = _("Give the API token's secret.")
            if not self.bridge:
                errors["bridge"] = _("Give the bridge the VMs' network device joins (e.g. vmbr0).")
            if self.ca_certificate and "-----BEGIN CERTIFICATE-----" not in self.ca_certificate:
                errors["ca_certificate"] = _("Paste the certificate in PEM form.")
            if errors:
                raise ValidationError(errors)
        elif not (self.network or self.bridge):
            raise ValidationError(_("Give a libvirt network or a bridge."))


class OsTemplate(models.Model):
    """An OS image on a node: libvirt, a qcow2 volume in the node's storage pool that VM disks are
    overlaid on; Proxmox VE, the VMID of a template VM (with a cloud-init drive) that VMs are cloned from."""

    node = models.ForeignKey(HypervisorNode, on_delete=models.CASCADE, related_name="templates", verbose_name=_("node"))
    os_image = models.ForeignKey(OsImage, on_delete=models.PROTECT, related_name="templates", verbose_name=_("OS image"))
    volume = models.CharField(_("volume in the storage pool"), max_length=255,
                              help_text=_("libvirt: the qcow2 volume's name; Proxmox VE: the template VM's VMID."))
    is_active = models.BooleanField(_("active"), default=True)

    def clean(self) -> None:
        if self.node_id and self.node.kind == HypervisorNode.Kind.PROXMOX and not (self.volume or "").isdigit():
            raise ValidationError({"volume": _("Give the template VM's VMID (a number).")})

    class Meta:
        verbose_name = _("OS template")
        verbose_name_plural = _("OS templates")
        ordering = ["node", "os_image__sort_order"]
        constraints = [models.UniqueConstraint(fields=["node", "os_image"], name="ostemplate_one_per_node_image")]

    def __str__(self) -> str:
        return f"{self.os_image} @ {self.node}"


class VirtualMachine(models.Model):
    """The VM of an order on a node. Created (with its node and name) before the hypervisor is called,
    so a retried create goes to the same node and finds the same domain."""

    order = models.OneToOneField("Order", on_delete=models.PROTECT, related_name="vm", verbose_name=_("order"))
    node = models.ForeignKey(HypervisorNode, on_delete=models.PROTECT, related_name="vms", verbose_name=_("node"))
    domain = models.CharField(_("domain name"), max_length=100, unique=True)
    vmid = models.PositiveIntegerField(_("Proxmox VMID"), null=True, blank=True)
    template = models.ForeignKey(OsTemplate, on_delete=models.SET_NULL, null=True, blank=True, verbose_name=_("OS template"))
    vcpus = models.PositiveIntegerField(_("vCPUs"))
    memory_mib = models.PositiveIntegerField(_("RAM, MiB"))
    disk_gib = models.PositiveIntegerField(_("disk, GiB"))
    state = models.CharField(_("last known state"), max_length=16, blank=True)
    # The speed limit a bandwidth job applied (past the traffic quota); empty: the plan's port speed.
    bandwidth_mbps = models.PositiveIntegerField(_("throttled to, Mbit/s"), null=True, blank=True)
    # Shown to the customer once (then blanked); never in admin or logs.
    initial_password = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    deleted_at = models.DateTimeField(_("deleted"), null=True, blank=True)

    class Meta:
        verbose_name = _("virtual machine")
        verbose_name_plural = _("virtual machines")
        indexes = [models.Index(fields=["node"], condition=Q(deleted_at__isnull=True), name="vm_live_on_node")]

    def __str__(self) -> str:
        return self.domain


class ProvisioningJob(ChoiceLabels, models.Model):
    """One module call for an order, run by a Celery task; retried with back-off, recovered by the sweeper."""

    class Action(models.TextChoices):
        CREATE = "create", _("Create")
        START = "start", _("Start")
        SHUTDOWN = "shutdown", _("Shut down")
        REBOOT = "reboot", _("Reboot")
        POWER_OFF = "power_off", _("Power off")
        SUSPEND = "suspend", _("Suspend")
        UNSUSPEND = "unsuspend", _("Unsuspend")
        RESIZE = "resize", _("Resize")
        REINSTALL = "reinstall", _("Reinstall")
        TERMINATE = "terminate", _("Terminate")
        BANDWIDTH = "bandwidth", _("Set bandwidth")

    class State(models.TextChoices):
        QUEUED = "queued", _("Queued")
        RUNNING = "running", _("Running")
        DONE = "done", _("Done")
        FAILED = "failed", _("Failed")
        CANCELLED = "cancelled", _("Cancelled")

    order = models.ForeignKey("Order", on_delete=models.PROTECT, related_name="jobs", verbose_name=_("order"))
    action = models.CharField(_("action"), max_length=16, choices=Action.choices)
    module = models.CharField(_("module"), max_length=32)
    state = models.CharField(_("state"), max_length=16, choices=State.choices, default=State.QUEUED)
    params = models.JSONField(_("parameters"), default=dict, blank=True)  # never secrets
    attempts = models.PositiveIntegerField(_("attempts"), default=0)
    last_error = models.TextField(_("last error"), blank=True)
    idempotency_key = models.CharField(max_length=128, unique=True)
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True,
                                     related_name="+", verbose_name=_("requested by"))
    source = models.CharField(_("source"), max_length=16, choices=OrderEvent.Source.choices)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    next_attempt_at = models.DateTimeField(_("next attempt"))
    claimed_at = models.DateTimeField(_("claimed"), null=True, blank=True)
    finished_at = models.DateTimeField(_("finished"), null=True, blank=True)

    class Meta:
        verbose_name = _("provisioning job")
        verbose_name_plural = _("provisioning jobs")
        ordering = ["-pk"]
        indexes = [
            models.Index(fields=["order", "id"]),
            models.Index(fields=["next_attempt_at"], condition=Q(state__in=["queued", "running"]), name="provjob_unfinished"),
        ]

    def __str__(self) -> str:
        return f"{self.get_action_display()} #{self.order_id}"


class PromoCode(models.Model):
    """A discount customers type at order time. Uses are counted by `PromoRedemption` rows under a lock
    on this row (see `orders.promo.promo_redeem`), so the limits hold under concurrent orders."""

    class Kind(models.TextChoices):
        PERCENT = "percent", _("Percentage")
        FIXED = "fixed", _("Fixed amount")

    code = models.CharField(_("code"), max_length=32, unique=True,
                            help_text=_("Letters, digits and dashes; customers may type it in any case."))
    description = models.CharField(_("description"), max_length=200, blank=True)
    kind = models.CharField(_("kind"), max_length=8, choices=Kind.choices, default=Kind.PERCENT)
    value = models.DecimalField(_("value"), max_digits=14, decimal_places=2,
                                help_text=_("Percent for a percentage code; an amount per period for a fixed one."))
    currency = models.CharField(_("currency"), max_length=3, blank=True, choices=settings.CURRENCY_CHOICES,
                                help_text=_("Required for a fixed amount. A percentage code with a currency applies only to orders in it."))
    periods = models.PositiveSmallIntegerField(
        _("billing periods discounted"), null=True, blank=True, default=1,
        help_text=_("1: the first period only; N: the first N periods, renewals included; empty: every period."))
    applies_to_plan = models.BooleanField(_("applies to the plan price"), default=True)
    applies_to_setup_fee = models.BooleanField(_("applies to the setup fee"), default=False)
    applies_to_addons = models.BooleanField(_("applies to add-ons"), default=False,
                                            help_text=_("Each add-on is discounted as an item of its own."))
    plans = models.ManyToManyField(Plan, blank=True, related_name="+", verbose_name=_("plans"),
                                   help_text=_("Empty: every plan."))
    valid_from = models.DateTimeField(_("valid from"), null=True, blank=True)
    valid_until = models.DateTimeField(_("valid until"), null=True, blank=True)
    max_uses = models.PositiveIntegerField(_("total uses"), null=True, blank=True, help_text=_("Empty: unlimited."))
    max_uses_per_customer = models.PositiveIntegerField(_("uses per customer"), null=True, blank=True, default=1,
                                                        help_text=_("Empty: unlimited."))
    new_customers_only = models.BooleanField(_("new customers only"), default=False,
                                             help_text=_("Only customers without an earlier paid order."))
    is_active = models.BooleanField(_("active"), default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = _("promo code")
        verbose_name_plural = _("promo codes")
        ordering = ["code"]
        constraints = [
            models.CheckConstraint(condition=Q(value__gt=0), name="promocode_value_gt_0"),
            models.CheckConstraint(condition=~Q(kind="percent") | Q(value__lte=100), name="promocode_percent_lte_100"),
            models.CheckConstraint(condition=~Q(kind="fixed") | ~Q(currency=""), name="promocode_fixed_has_currency"),
            models.CheckConstraint(condition=Q(applies_to_plan=True) | Q(applies_to_setup_fee=True) | Q(applies_to_addons=True),
                                   name="promocode_applies_to_something"),
            models.CheckConstraint(condition=Q(periods__isnull=True) | Q(periods__gte=1), name="promocode_periods_gte_1"),
        ]

    def __str__(self) -> str:
        return self.code

    def clean(self):
        super().clean()
        self.code = (self.code or "").strip().upper()
        if self.code and not self.code.replace("-", "").isalnum():
            raise ValidationError({"code": _("Use letters, digits and dashes only.")})
        if self.kind == self.Kind.FIXED and not self.currency:
            raise ValidationError({"currency": _("A fixed-amount code needs a currency.")})
        if self.kind == self.Kind.PERCENT and self.value is not None and self.value > 100:
            raise ValidationError({"value": _("A percentage cannot exceed 100.")})
        if not (self.applies_to_plan or self.applies_to_setup_fee or self.applies_to_addons):
            raise ValidationError(_("Choose what the code discounts: the plan price, the setup fee, add-ons or several."))
        if self.valid_from and self.valid_until and self.valid_until <= self.valid_from:
            raise ValidationError({"valid_until": _("The end must be after the start.")})


class PromoRedemption(models.Model):
    """One use of a promo code: the order it was used on. A use whose order was cancelled unpaid is
    released (it no longer counts against the limits)."""

    promo = models.ForeignKey(PromoCode, on_delete=models.PROTECT, related_name="redemptions", verbose_name=_("promo code"))
    customer = models.ForeignKey("accounts.Customer", on_delete=models.PROTECT, related_name="+", verbose_name=_("customer"))
    order = models.OneToOneField(Order, on_delete=models.CASCADE, related_name="promo_redemption", verbose_name=_("order"))
    created_at = models.DateTimeField(_("used"), auto_now_add=True)
    released_at = models.DateTimeField(_("released"), null=True, blank=True)

    class Meta:
        verbose_name = _("promo code use")
        verbose_name_plural = _("promo code uses")
        ordering = ["-pk"]
        indexes = [models.Index(fields=["promo", "customer"])]

    def __str__(self) -> str:
        return f"{self.promo} → {self.order_id}"


class TrafficOverage(models.Model):
    """A service's traffic passed its plan's quota in a traffic period (its monthly cycle, see
    orders.usage.traffic_period). One row per order and period (the unique constraint): the customer is
    notified when it is inserted, so once per period however often or concurrently the check runs
    (orders/traffic_quota.py)."""

    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="traffic_overages", verbose_name=_("order"))
    period_start = models.DateTimeField(_("period started"))
    used_bytes = models.BigIntegerField(_("traffic used, bytes"))
    quota_bytes = models.BigIntegerField(_("quota, bytes"))
    action = models.CharField(_("over-quota action"), max_length=16, choices=Plan.OverQuotaAction.choices)
    created_at = models.DateTimeField(_("detected"), auto_now_add=True)

    class Meta:
        verbose_name = _("traffic over quota")
        verbose_name_plural = _("traffic over quota")
        ordering = ["-pk"]
        constraints = [models.UniqueConstraint(fields=["order", "period_start"], name="traffic_overage_once_per_period")]

    def __str__(self) -> str:
        return f"#{self.order_id} {self.period_start:%Y-%m-%d}"


class ConsoleToken(models.Model):
    """A one-time, short-lived ticket for the browser console (noVNC through the console process). Only
    its SHA-256 digest is stored; it names the user and the VM it was issued for, and is redeemed once
    by the console process's token plugin (orders/console.py) before `expires_at`."""

    digest = models.CharField(max_length=64, unique=True)
    user = models.ForeignKey("accounts.User", on_delete=models.CASCADE, related_name="+")
    vm = models.ForeignKey(VirtualMachine, on_delete=models.CASCADE, related_name="console_tokens")
    host = models.CharField(max_length=255)
    port = models.PositiveIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = _("console token")
        verbose_name_plural = _("console tokens")
        indexes = [models.Index(fields=["expires_at"], name="console_token_expiry")]


class UsageSample(models.Model):
    """A VM's cumulative counters as read from the hypervisor (orders.usage samples every few minutes;
    after a day only the last sample of each hour is kept, which keeps hourly deltas exact)."""

    vm = models.ForeignKey(VirtualMachine, on_delete=models.CASCADE, related_name="usage_samples")
    taken_at = models.DateTimeField()
    cpu_time_ns = models.BigIntegerField()
    net_rx_bytes = models.BigIntegerField()
    net_tx_bytes = models.BigIntegerField()
    disk_read_bytes = models.BigIntegerField()
    disk_write_bytes = models.BigIntegerField()

    class Meta:
        verbose_name = _("usage sample")
        verbose_name_plural = _("usage samples")
        indexes = [models.Index(fields=["vm", "taken_at"], name="usage_sample_vm_time")]
