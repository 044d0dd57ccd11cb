"""Catalogue (product types, plans, prices), IP pools, and customers' orders with their history.

Invoices live in billing; orders refer to them by id (`invoice_id`) and by the invoice `reference`
string ("order:<id>…"), so the two apps' migrations stay independent and billing never imports orders.
"""
from decimal import Decimal

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from django.template.loader import render_to_string
from django.utils.translation import gettext_lazy as _

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

    class Meta:
        verbose_name = _("IP pool")
        verbose_name_plural = _("IP pools")
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Plan(models.Model):
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
    locations = models.ManyToManyField(Location, related_name="plans", verbose_name=_("locations"))
    ip_pool = models.ForeignKey(IpPool, on_delete=models.PROTECT, null=True, blank=True, related_name="plans",
                                verbose_name=_("IP pool"), help_text=_("Used when the product type provisions from a pool."))
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
        constraints = [models.CheckConstraint(condition=Q(setup_fee__gte=0), name="plan_setup_fee_gte_0")]

    def __str__(self) -> str:
        return self.name

    @property
    def in_stock(self) -> bool:
        return self.stock is None or self.stock > 0


class PlanPrice(models.Model):
    plan = models.ForeignKey(Plan, on_delete=models.CASCADE, related_name="prices", verbose_name=_("plan"))
    period_months = models.PositiveSmallIntegerField(_("period"), choices=PERIOD_CHOICES)
    currency = models.CharField(_("currency"), max_length=3, choices=settings.CURRENCY_CHOICES)
    amount = models.DecimalField(_("price per period"), max_digits=14, decimal_places=2)

    class Meta:
        verbose_name = _("plan price")
        verbose_name_plural = _("plan prices")
        ordering = ["plan", "period_months", "currency"]
        constraints = [
            models.UniqueConstraint(fields=["plan", "period_months", "currency"], name="planprice_unique_period_currency"),
            models.CheckConstraint(condition=Q(amount__gt=0), name="planprice_amount_gt_0"),
            models.CheckConstraint(condition=Q(period_months__in=PERIOD_MONTHS), name="planprice_known_period"),
        ]

    def __str__(self) -> str:
        return f"{self.plan} {self.period_months}m {self.amount} {self.currency}"


class Order(models.Model):
    """A customer's service. One row for its whole life; periods are counted in `current_period`."""

    class Status(models.TextChoices):
        PENDING = "pending", _("Pending")
        ACTIVE = "active", _("Active")
        EXPIRED = "expired", _("Expired")
        SUSPENDED = "suspended", _("Suspended")
        TERMINATED = "terminated", _("Terminated")
        CANCELLED = "cancelled", _("Cancelled")

    class Provisioning(models.TextChoices):
        NOT_STARTED = "not_started", _("Not started")
        WAITING_STAFF = "waiting_staff", _("Waiting for staff")
        DONE = "done", _("Done")

    customer = models.ForeignKey("accounts.Customer", on_delete=models.PROTECT, related_name="orders", verbose_name=_("customer"))
    plan = models.ForeignKey(Plan, on_delete=models.PROTECT, related_name="orders", verbose_name=_("plan"))
    period_months = models.PositiveSmallIntegerField(_("billing period"), choices=PERIOD_CHOICES)
    # Recurring price of one period, fixed when ordered (or when the plan changes); catalogue price
    # changes do not touch existing services.
    price = models.DecimalField(_("price per period"), max_digits=14, decimal_places=2)
    currency = models.CharField(_("currency"), max_length=3)
    status = models.CharField(_("status"), max_length=16, choices=Status.choices, default=Status.PENDING, db_index=True)
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
        ]
        constraints = [
            models.CheckConstraint(condition=Q(price__gte=0), name="order_price_gte_0"),
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


class OrderEvent(models.Model):
    """History of an order: every transition with who or what caused it."""

    class Source(models.TextChoices):
        CUSTOMER = "customer", _("Customer")
        STAFF = "staff", _("Staff")
        SYSTEM = "system", _("System")
        PAYMENT = "payment", _("Payment")

    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="events")
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

    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="renewals")
    period = models.PositiveIntegerField()
    periods = models.PositiveSmallIntegerField(default=1)
    amount = models.DecimalField(max_digits=14, decimal_places=2)
    currency = models.CharField(max_length=3)
    plan = models.ForeignKey(Plan, on_delete=models.PROTECT, related_name="+")
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


class IpAddress(models.Model):
    pool = models.ForeignKey(IpPool, on_delete=models.PROTECT, related_name="addresses", verbose_name=_("pool"))
    address = models.GenericIPAddressField(_("address"), unique=True)
    order = models.OneToOneField(Order, on_delete=models.SET_NULL, null=True, blank=True, related_name="pool_address",
                                 verbose_name=_("order"))
    allocated_at = models.DateTimeField(_("allocated"), null=True, blank=True)

    class Meta:
        verbose_name = _("IP address")
        verbose_name_plural = _("IP addresses")
        ordering = ["pool", "pk"]
        indexes = [models.Index(fields=["pool"], condition=Q(order__isnull=True), name="ipaddress_free_in_pool")]

    def __str__(self) -> str:
        return self.address
