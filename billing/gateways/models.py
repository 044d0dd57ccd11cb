"""Payment gateways: which are offered where, payment attempts, saved methods, auto-payment, webhook log.

The `Sandbox*` models are the built-in test provider's own books: in production they would live at the
provider, so the portal code never reads them except through the sandbox's HTTP surface.
"""
import uuid
from decimal import Decimal

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

MONEY = {"max_digits": 20, "decimal_places": 3}


class GatewayConfig(models.Model):
    """Staff switch a gateway on per currency and per country ("your country may affect payment methods")."""

    code = models.CharField(_("gateway"), max_length=32, unique=True)
    enabled = models.BooleanField(_("enabled"), default=False)
    currencies = ArrayField(
        models.CharField(max_length=3), verbose_name=_("currencies"), blank=True, default=list,
        help_text=_("Comma-separated ISO codes, e.g. EUR,USD. Empty: every currency the gateway supports."),
    )
    countries = ArrayField(
        models.CharField(max_length=2), verbose_name=_("countries"), blank=True, default=list,
        help_text=_("Comma-separated ISO country codes, e.g. DE,FR. Empty: customers from any country."),
    )
    excluded_countries = ArrayField(
        models.CharField(max_length=2), verbose_name=_("excluded countries"), blank=True, default=list,
        help_text=_("Comma-separated ISO country codes where this gateway is never offered."),
    )
    position = models.PositiveSmallIntegerField(_("position"), default=0)

    class Meta:
        verbose_name = _("gateway setting")
        verbose_name_plural = _("gateway settings")
        ordering = ["position", "code"]

    def __str__(self) -> str:
        return self.code

    def allows(self, *, currency: str, country: str) -> bool:
        if not self.enabled:
            return False
        if self.currencies and currency not in self.currencies:
            return False
        if country and country in self.excluded_countries:
            return False
        return not self.countries or country in self.countries


BRAND_LABELS = {"visa": "Visa", "mastercard": "Mastercard", "amex": "American Express", "mir": "Mir", "unionpay": "UnionPay",
                "jcb": "JCB", "discover": "Discover", "diners": "Diners Club"}


class SavedPaymentMethod(models.Model):
    """A card or wallet tokenised at the gateway; the portal never sees the full number."""

    class Kind(models.TextChoices):
        CARD = "card", _("Card")
        WALLET = "wallet", _("Wallet")

    customer = models.ForeignKey("accounts.Customer", on_delete=models.CASCADE, related_name="payment_methods")
    gateway = models.CharField(_("gateway"), max_length=32)
    token = models.CharField(_("gateway token"), max_length=128)
    kind = models.CharField(_("type"), max_length=16, choices=Kind.choices, default=Kind.CARD)
    brand = models.CharField(_("brand"), max_length=32, blank=True)
    last4 = models.CharField(_("last 4 digits"), max_length=4, blank=True)
    exp_month = models.PositiveSmallIntegerField(_("expiry month"), null=True, blank=True)
    exp_year = models.PositiveSmallIntegerField(_("expiry year"), null=True, blank=True)
    is_default = models.BooleanField(_("default"), default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = _("saved payment method")
        verbose_name_plural = _("saved payment methods")
        ordering = ["-is_default", "-created_at", "-pk"]
        constraints = [
            models.UniqueConstraint(fields=["gateway", "token"], name="gateways_method_token_unique"),
            models.UniqueConstraint(fields=["customer"], condition=Q(is_default=True), name="gateways_one_default_method"),
        ]

    def __str__(self) -> str:
        return f"{self.brand_label} •••• {self.last4}".strip()

    @property
    def brand_label(self) -> str:
        return BRAND_LABELS.get(self.brand, self.brand.title()) or str(self.get_kind_display())

    @property
    def expiry(self) -> str:
        if not self.exp_month or not self.exp_year:
            return ""
        return f"{self.exp_month:02d}/{self.exp_year % 100:02d}"


class GatewayCustomer(models.Model):
    """The customer's id at a gateway (Stripe `cus_...`), needed to charge saved methods off-session."""

    customer = models.ForeignKey("accounts.Customer", on_delete=models.CASCADE, related_name="+")
    gateway = models.CharField(max_length=32)
    external_id = models.CharField(max_length=128)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["customer", "gateway"], name="gateways_customer_per_gateway")]


class PaymentAttempt(models.Model):
    """One try to collect money through a gateway: created first, then confirmed by the gateway's webhook."""

    class Purpose(models.TextChoices):
        PAYMENT = "payment", _("Payment")
        SETUP = "setup", _("Save a payment method")
        AUTOPAY = "autopay", _("Auto-payment")

    class Status(models.TextChoices):
        CREATED = "created", _("Created")
        PENDING = "pending", _("Processing")
        SUCCEEDED = "succeeded", _("Succeeded")
        FAILED = "failed", _("Failed")
        CANCELLED = "cancelled", _("Cancelled")
        REFUNDED = "refunded", _("Refunded")

    reference = models.UUIDField(_("reference"), default=uuid.uuid4, unique=True, editable=False)
    customer = models.ForeignKey("accounts.Customer", on_delete=models.PROTECT, related_name="payment_attempts")
    invoice = models.ForeignKey(
        "billing.Invoice", on_delete=models.PROTECT, null=True, blank=True, related_name="payment_attempts"
    )
    purpose = models.CharField(_("purpose"), max_length=16, choices=Purpose.choices, default=Purpose.PAYMENT)
    gateway = models.CharField(_("gateway"), max_length=32)
    amount = models.DecimalField(_("amount"), **MONEY)
    currency = models.CharField(_("currency"), max_length=3)
    status = models.CharField(_("status"), max_length=16, choices=Status.choices, default=Status.CREATED)
    external_id = models.CharField(_("gateway session"), max_length=128, blank=True)
    transaction_id = models.CharField(_("gateway transaction"), max_length=128, blank=True)
    save_method = models.BooleanField(_("save the payment method"), default=False)
    saved_method = models.ForeignKey(
        SavedPaymentMethod, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    via_pay_link = models.BooleanField(default=False)
    payment_id = models.BigIntegerField(_("billing payment"), null=True, blank=True)
    refunded_amount = models.DecimalField(_("refunded"), default=Decimal("0"), **MONEY)
    failure_message = models.CharField(_("failure"), max_length=255, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = _("payment attempt")
        verbose_name_plural = _("payment attempts")
        ordering = ["-created_at", "-pk"]
        constraints = [
            models.CheckConstraint(condition=Q(amount__gte=0), name="gateways_attempt_amount_gte_0"),
            models.CheckConstraint(
                condition=Q(refunded_amount__gte=0) & Q(refunded_amount__lte=models.F("amount")),
                name="gateways_attempt_refund_within_amount",
            ),
            models.UniqueConstraint(
                fields=["gateway", "external_id"], condition=~Q(external_id=""), name="gateways_attempt_external_unique"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.gateway} {self.amount} {self.currency} ({self.status})"


class AutopaySettings(models.Model):
    """Finance → Auto payment → Configure: the saved method to charge and the monthly maximum."""

    customer = models.OneToOneField("accounts.Customer", on_delete=models.CASCADE, related_name="autopay")
    enabled = models.BooleanField(_("auto-payment enabled"), default=False)
    method = models.ForeignKey(
        SavedPaymentMethod, on_delete=models.SET_NULL, null=True, blank=True, related_name="+",
        verbose_name=_("payment method"),
    )
    monthly_limit = models.DecimalField(_("maximum top-up per month"), default=Decimal("0"), **MONEY)
    # The cap's currency (the account currency when it was set; converted with an account currency change).
    monthly_limit_currency = models.CharField(_("currency of the maximum"), max_length=3, default=settings.DEFAULT_CURRENCY)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = _("auto-payment setting")
        verbose_name_plural = _("auto-payment settings")
        constraints = [models.CheckConstraint(condition=Q(monthly_limit__gte=0), name="gateways_autopay_limit_gte_0")]


class AutopayCharge(models.Model):
    """One auto-payment try per customer per day (the unique constraint is what stops overlapping jobs)."""

    class Status(models.TextChoices):
        PENDING = "pending", _("Processing")
        SUCCEEDED = "succeeded", _("Succeeded")
        FAILED = "failed", _("Failed")

    customer = models.ForeignKey("accounts.Customer", on_delete=models.CASCADE, related_name="autopay_charges")
    day = models.DateField(_("day"))
    amount = models.DecimalField(_("amount"), **MONEY)
    currency = models.CharField(_("currency"), max_length=3)
    status = models.CharField(_("status"), max_length=16, choices=Status.choices, default=Status.PENDING)
    reason = models.CharField(_("reason"), max_length=255, blank=True)
    attempt = models.OneToOneField(PaymentAttempt, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    failure_message = models.CharField(_("failure"), max_length=255, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = _("auto-payment charge")
        verbose_name_plural = _("auto-payment charges")
        ordering = ["-day", "-pk"]
        constraints = [
            models.UniqueConstraint(fields=["customer", "day"], name="gateways_autopay_once_per_day"),
            models.CheckConstraint(condition=Q(amount__gt=0), name="gateways_autopay_amount_gt_0"),
        ]


class BankTransferReceipt(models.Model):
    """A bank statement line staff matched to an invoice; the bank's reference makes it idempotent."""

    invoice = models.ForeignKey("billing.Invoice", on_delete=models.PROTECT, related_name="+", verbose_name=_("invoice"))
    amount = models.DecimalField(_("amount"), **MONEY)
    currency = models.CharField(_("currency"), max_length=3)
    bank_reference = models.CharField(_("bank transaction reference"), max_length=128, unique=True)
    received_on = models.DateField(_("received on"))
    recorded_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    payment_id = models.BigIntegerField(_("billing payment"), null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = _("bank transfer")
        verbose_name_plural = _("bank transfers")
        ordering = ["-created_at"]
        constraints = [models.CheckConstraint(condition=Q(amount__gt=0), name="gateways_bank_amount_gt_0")]


class WebhookDelivery(models.Model):
    """Every webhook request as received, and what we did with it (staff read these in admin)."""

    class Result(models.TextChoices):
        PROCESSED = "processed", _("Processed")
        DUPLICATE = "duplicate", _("Duplicate (already processed)")
        IGNORED = "ignored", _("Ignored event type")
        UNKNOWN_REFERENCE = "unknown_reference", _("Unknown payment reference")
        MISMATCH = "mismatch", _("Amount or currency mismatch")
        BAD_SIGNATURE = "bad_signature", _("Bad signature")
        STALE = "stale", _("Timestamp outside tolerance")
        MALFORMED = "malformed", _("Malformed payload")
        ERROR = "error", _("Processing error")
        RECEIVED = "received", _("Received")

    gateway = models.CharField(_("gateway"), max_length=32)
    received_at = models.DateTimeField(_("received at"), auto_now_add=True, db_index=True)
    remote_ip = models.GenericIPAddressField(_("IP address"), null=True, blank=True)
    signature = models.CharField(_("signature header"), max_length=512, blank=True)
    payload = models.TextField(_("payload"))
    event_id = models.CharField(_("event id"), max_length=128, blank=True, db_index=True)
    event_type = models.CharField(_("event type"), max_length=64, blank=True)
    result = models.CharField(_("result"), max_length=24, choices=Result.choices, default=Result.RECEIVED)
    http_status = models.PositiveSmallIntegerField(_("response status"), null=True)
    detail = models.TextField(_("detail"), blank=True)
    attempt = models.ForeignKey(PaymentAttempt, on_delete=models.SET_NULL, null=True, blank=True, related_name="webhooks")

    class Meta:
        verbose_name = _("webhook delivery")
        verbose_name_plural = _("webhook deliveries")
        ordering = ["-received_at", "-pk"]


# --- The built-in sandbox provider's own records ---------------------------------------------------

class SandboxCheckout(models.Model):
    class Mode(models.TextChoices):
        PAYMENT = "payment", "payment"
        SETUP = "setup", "setup"

    class Status(models.TextChoices):
        OPEN = "open", "open"
        PROCESSING = "processing", "processing"
        COMPLETE = "complete", "complete"
        CANCELLED = "cancelled", "cancelled"

    id = models.CharField(primary_key=True, max_length=64)
    mode = models.CharField(max_length=16, choices=Mode.choices, default=Mode.PAYMENT)
    merchant_reference = models.CharField(max_length=64, db_index=True)
    customer_ref = models.CharField(max_length=64, blank=True)
    amount = models.DecimalField(**MONEY)
    currency = models.CharField(max_length=3)
    description = models.CharField(max_length=255, blank=True)
    allow_save = models.BooleanField(default=False)
    success_url = models.CharField(max_length=1000)
    cancel_url = models.CharField(max_length=1000)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.OPEN)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()


class SandboxCard(models.Model):
    """A card token the sandbox hands out when the customer ticks "save"; charged later off-session."""

    id = models.CharField(primary_key=True, max_length=64)
    customer_ref = models.CharField(max_length=64)
    brand = models.CharField(max_length=32)
    last4 = models.CharField(max_length=4)
    exp_month = models.PositiveSmallIntegerField()
    exp_year = models.PositiveSmallIntegerField()
    behaviour = models.CharField(max_length=16)  # succeed / decline / pending: decided by the test number
    detached = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)


class SandboxCharge(models.Model):
    id = models.CharField(primary_key=True, max_length=64)
    checkout = models.ForeignKey(SandboxCheckout, on_delete=models.PROTECT, null=True, blank=True)
    card = models.ForeignKey(SandboxCard, on_delete=models.PROTECT, null=True, blank=True)
    merchant_reference = models.CharField(max_length=64, db_index=True)
    amount = models.DecimalField(**MONEY)
    currency = models.CharField(max_length=3)
    status = models.CharField(max_length=16)  # succeeded / declined / pending
    refunded_amount = models.DecimalField(default=Decimal("0"), **MONEY)
    created_at = models.DateTimeField(auto_now_add=True)


class SandboxWebhookOutbox(models.Model):
    """Events the sandbox must deliver: written with the charge, posted over HTTP until acknowledged."""

    event_id = models.CharField(max_length=64, unique=True)
    event_type = models.CharField(max_length=64)
    payload = models.JSONField()
    deliver_after = models.DateTimeField(db_index=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    last_status = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [models.Index(fields=["deliver_after"], condition=Q(delivered_at__isnull=True), name="gw_sandbox_outbox_due")]
