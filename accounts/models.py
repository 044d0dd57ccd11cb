import uuid
from decimal import Decimal

from django.conf import settings
from django.contrib.auth.models import AbstractUser, UserManager
from django.db import models
from django.db.models.functions import Lower
from django.utils.translation import gettext_lazy as _


class Customer(models.Model):
    """The client account: what owns balance, orders, invoices and tickets.

    Its primary key is the public "Client ID" (the sequence starts at 100001, see migration 0001).
    Several users (the owner and trusted users) may act for one customer.
    """

    class ProfileType(models.TextChoices):
        PRIVATE = "private", _("Private person")
        COMPANY = "company", _("Company")

    class Verification(models.TextChoices):
        NOT_REQUIRED = "not_required", _("Not required")
        PENDING = "pending", _("Awaiting verification")
        VERIFIED = "verified", _("Verified")
        REJECTED = "rejected", _("Rejected")

    created_at = models.DateTimeField(auto_now_add=True)
    # Account currency of the balance; site currency is how prices are shown.
    currency = models.CharField(_("account currency"), max_length=3, default=settings.DEFAULT_CURRENCY)
    site_currency = models.CharField(_("site currency"), max_length=3, default=settings.DEFAULT_CURRENCY)
    language = models.CharField(_("interface language"), max_length=8, choices=settings.LANGUAGES, default="en")
    timezone = models.CharField(_("time zone"), max_length=64, default=settings.TIME_ZONE)

    # Postal address and profile type (payment gate fields).
    street = models.CharField(_("address"), max_length=255, blank=True)
    city = models.CharField(_("city"), max_length=120, blank=True)
    postcode = models.CharField(_("postcode"), max_length=20, blank=True)
    country = models.CharField(_("country"), max_length=2, blank=True)
    profile_type = models.CharField(
        _("profile type"), max_length=10, choices=ProfileType.choices, default=ProfileType.PRIVATE
    )
    company_name = models.CharField(_("company name"), max_length=255, blank=True)
    company_registration_number = models.CharField(_("registration number"), max_length=64, blank=True)
    company_vat_number = models.CharField(_("VAT number"), max_length=64, blank=True)
    verification_status = models.CharField(
        _("verification status"), max_length=16, choices=Verification.choices, default=Verification.NOT_REQUIRED
    )
    verification_note = models.TextField(_("verification note"), blank=True)

    # Preferences.
    newsletter = models.BooleanField(_("newsletter subscription"), default=False)
    low_balance_threshold = models.DecimalField(
        _("low balance alert threshold"), max_digits=14, decimal_places=2, default=Decimal("0")
    )
    # The threshold's currency: the account currency it was entered in (billing converts both with
    # an account currency change); a threshold in another currency never triggers an alert.
    low_balance_threshold_currency = models.CharField(
        _("low balance alert threshold currency"), max_length=3, default=settings.DEFAULT_CURRENCY
    )
    auto_renew_default = models.BooleanField(_("auto-renewal of orders"), default=True)
    pay_without_login = models.BooleanField(_("payment without authorization"), default=False)

    # Where each category of mail goes; blank means the owner's account email.
    email_billing = models.EmailField(_("accounts/orders email"), blank=True)
    email_support = models.EmailField(_("technical support email"), blank=True)
    email_abuse = models.EmailField(_("abuse email"), blank=True)

    # Security. The code word is write-once and stored as a password hash
    # (see accounts.services.security.customer_set_code_word).
    code_word_hash = models.CharField(_("code word (hashed)"), max_length=128, blank=True)
    # One IP, range or CIDR per line, as the customer typed it (validated by accounts.ip_allowlist).
    ip_allowlist = models.TextField(_("allowed IP addresses"), blank=True)
    show_last_login = models.BooleanField(_("display last IP"), default=False)
    login_alerts = models.BooleanField(_("login notification"), default=False)

    # Set when staff approved an account deletion and the personal data was anonymized.
    anonymized_at = models.DateTimeField(_("anonymized at"), null=True, blank=True)

    class Meta:
        verbose_name = _("customer")
        verbose_name_plural = _("customers")
        constraints = [
            models.CheckConstraint(condition=models.Q(low_balance_threshold__gte=0), name="customer_threshold_gte_0"),
        ]

    def __str__(self) -> str:
        return f"{self.client_id} {self.display_name}".strip()

    @property
    def client_id(self) -> int:
        return self.pk

    @property
    def display_name(self) -> str:
        if self.profile_type == self.ProfileType.COMPANY and self.company_name:
            return self.company_name
        from .selectors import customer_owner

        owner = customer_owner(customer=self)
        return owner.get_full_name() or owner.username if owner else ""


def private_storage():
    """Private files (local disk or S3, MEDIA_STORAGE); no public URL, only access-checked views serve them."""
    from .storage import PrivateStorage

    return PrivateStorage()


def avatar_path(instance: "User", filename: str) -> str:
    # Always our own re-encoded image: a random name, the extension of the format we wrote.
    return f"avatars/{instance.pk}/{uuid.uuid4().hex}{filename[filename.rfind('.'):]}"


def export_path(instance: "DataExport", filename: str) -> str:
    return f"exports/{instance.customer_id}/{uuid.uuid4().hex}.zip"


class CustomerUserManager(UserManager):
    def get_by_natural_key(self, username):
        return self.get(username__iexact=username)


class User(AbstractUser):
    """A login. Staff users have no customer; customer users act for exactly one customer."""

    class Role(models.TextChoices):
        OWNER = "owner", _("Owner")
        FINANCE = "finance", _("Finance")
        TECHNICAL = "technical", _("Technical")

    class Theme(models.TextChoices):
        LIGHT = "light", _("Light")
        DARK = "dark", _("Dark")

    customer = models.ForeignKey(
        Customer, on_delete=models.PROTECT, null=True, blank=True, related_name="users", verbose_name=_("customer")
    )
    role = models.CharField(_("role"), max_length=16, choices=Role.choices, default=Role.OWNER)
    email = models.EmailField(_("email address"))
    email_verified = models.BooleanField(_("email verified"), default=False)
    # A requested new address: `email` stays in force until the link sent here is confirmed.
    pending_email = models.EmailField(_("new email awaiting confirmation"), blank=True)
    phone = models.CharField(_("mobile number"), max_length=20, blank=True)
    phone_verified = models.BooleanField(_("mobile number verified"), default=False)
    theme = models.CharField(_("theme"), max_length=8, choices=Theme.choices, default=Theme.LIGHT)
    avatar = models.FileField(_("avatar"), storage=private_storage, upload_to=avatar_path, max_length=200, blank=True)

    objects = CustomerUserManager()

    class Meta:
        verbose_name = _("user")
        verbose_name_plural = _("users")
        constraints = [
            models.UniqueConstraint(Lower("username"), name="user_username_ci_unique"),
            models.UniqueConstraint(Lower("email"), name="user_email_ci_unique", condition=~models.Q(email="")),
        ]


class ActivityEvent(models.Model):
    """Append-only audit trail: logins, security changes, staff actions on a customer's account.

    `visible_to_customer` events make the customer's Activity log; the rest are the staff audit.
    """

    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, null=True, blank=True, related_name="activity")
    actor = models.ForeignKey(User, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    action = models.CharField(_("action"), max_length=64)
    ip = models.GenericIPAddressField(_("IP address"), null=True, blank=True)
    details = models.JSONField(_("details"), default=dict, blank=True)
    visible_to_customer = models.BooleanField(default=True)

    class Meta:
        verbose_name = _("activity event")
        verbose_name_plural = _("activity events")
        ordering = ["-created_at", "-pk"]
        indexes = [models.Index(fields=["customer", "-created_at"])]

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M} {self.action}"


class PhoneVerification(models.Model):
    """One code sent to a mobile number; the code itself is stored hashed."""

    class Method(models.TextChoices):
        SMS = "sms", _("SMS")
        CALL = "call", _("Call password")

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="phone_verifications")
    phone = models.CharField(_("mobile number"), max_length=20)
    method = models.CharField(_("method"), max_length=8, choices=Method.choices)
    code_hash = models.CharField(max_length=128)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    attempts = models.PositiveSmallIntegerField(default=0)
    verified_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = _("phone verification")
        verbose_name_plural = _("phone verifications")
        ordering = ["-created_at", "-pk"]
        indexes = [models.Index(fields=["user", "-created_at"])]


class PolicyVersion(models.Model):
    """One published text of the privacy policy or the terms; a change is a new version, never an edit."""

    class Kind(models.TextChoices):
        PRIVACY = "privacy", _("Privacy policy")
        TERMS = "terms", _("Terms of service")

    kind = models.CharField(_("document"), max_length=16, choices=Kind.choices)
    version = models.PositiveIntegerField(_("version"), editable=False)
    title = models.CharField(_("title"), max_length=200)
    text = models.TextField(_("text"), help_text=_("Plain text; blank lines separate paragraphs."))
    changes = models.TextField(_("what changed"), blank=True,
                               help_text=_("A short summary shown to customers in the review banner."))
    # Russian texts; empty means customers reading in Russian see the English one.
    title_ru = models.CharField(_("title (Russian)"), max_length=200, blank=True)
    text_ru = models.TextField(_("text (Russian)"), blank=True)
    changes_ru = models.TextField(_("what changed (Russian)"), blank=True)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    created_by = models.ForeignKey(User, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    published_at = models.DateTimeField(_("published"), null=True, blank=True, db_index=True)

    class Meta:
        verbose_name = _("policy version")
        verbose_name_plural = _("policy versions")
        ordering = ["kind", "-version"]
        constraints = [models.UniqueConstraint(fields=["kind", "version"], name="policy_kind_version_unique")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} v{self.version}"


class PolicyAcceptance(models.Model):
    """A user accepted a policy version: when and from which address."""

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="policy_acceptances")
    policy = models.ForeignKey(PolicyVersion, on_delete=models.PROTECT, related_name="acceptances")
    accepted_at = models.DateTimeField(_("accepted at"), auto_now_add=True)
    ip = models.GenericIPAddressField(_("IP address"), null=True, blank=True)

    class Meta:
        verbose_name = _("policy acceptance")
        verbose_name_plural = _("policy acceptances")
        constraints = [models.UniqueConstraint(fields=["user", "policy"], name="policy_acceptance_once")]


class DataExport(models.Model):
    """"Export my data": written first (pending), built by a worker into a ZIP, downloadable for a while."""

    class Status(models.TextChoices):
        PENDING = "pending", _("Being prepared")
        READY = "ready", _("Ready")
        FAILED = "failed", _("Failed")
        EXPIRED = "expired", _("Expired")

    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="data_exports")
    requested_by = models.ForeignKey(User, on_delete=models.CASCADE, related_name="+")
    status = models.CharField(_("status"), max_length=10, choices=Status.choices, default=Status.PENDING)
    created_at = models.DateTimeField(_("requested"), auto_now_add=True)
    finished_at = models.DateTimeField(_("prepared"), null=True, blank=True)
    expires_at = models.DateTimeField(_("link valid until"), null=True, blank=True)
    file = models.FileField(storage=private_storage, upload_to=export_path, max_length=200, blank=True)
    size = models.PositiveBigIntegerField(_("size"), default=0)
    attempts = models.PositiveSmallIntegerField(default=0)
    error = models.TextField(blank=True)

    class Meta:
        verbose_name = _("data export")
        verbose_name_plural = _("data exports")
        ordering = ["-created_at", "-pk"]
        constraints = [
            # A double click or two tabs cannot queue two exports at once.
            models.UniqueConstraint(fields=["customer"], condition=models.Q(status="pending"),
                                    name="data_export_one_pending"),
        ]


class DeletionRequest(models.Model):
    """The customer asks to close the account; staff review it and, on approval, personal data is anonymized."""

    class Status(models.TextChoices):
        PENDING = "pending", _("Awaiting review")
        COMPLETED = "completed", _("Completed")
        REJECTED = "rejected", _("Rejected")
        CANCELLED = "cancelled", _("Cancelled")

    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="deletion_requests",
                                 verbose_name=_("customer"))
    requested_by = models.ForeignKey(User, on_delete=models.SET_NULL, null=True, related_name="+")
    reason = models.TextField(_("reason given by the customer"), blank=True)
    status = models.CharField(_("status"), max_length=10, choices=Status.choices, default=Status.PENDING)
    created_at = models.DateTimeField(_("requested"), auto_now_add=True)
    reviewed_by = models.ForeignKey(User, on_delete=models.SET_NULL, null=True, blank=True, related_name="+",
                                    verbose_name=_("reviewed by"))
    reviewed_at = models.DateTimeField(_("reviewed"), null=True, blank=True)
    staff_note = models.TextField(_("note to the customer"), blank=True)

    class Meta:
        verbose_name = _("account deletion request")
        verbose_name_plural = _("account deletion requests")
        ordering = ["-created_at", "-pk"]
        constraints = [
            models.UniqueConstraint(fields=["customer"], condition=models.Q(status="pending"),
                                    name="deletion_request_one_pending"),
        ]

    def __str__(self) -> str:
        return f"{self.customer_id} ({self.get_status_display()})"
