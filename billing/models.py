"""Billing data: the double-entry ledger, currencies and rates, invoices, payments, credit notes.

Sign convention: an account's balance is the plain sum of its legs. A customer's balance account goes
up on a top-up and down on a charge; provider-side accounts (clearing, revenue, tax, FX, holding,
adjustments) take the opposite legs, so every ledger transaction sums to zero per currency.
PostgreSQL enforces that (deferred constraint trigger, migration 0002) and refuses UPDATE/DELETE
on ledger rows.
"""
from decimal import Decimal

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.utils.translation import gettext_lazy as _

from accounts.models import Customer
from core.choices import ChoiceLabels

AMOUNT = {"max_digits": 20, "decimal_places": 4}
RATE = {"max_digits": 24, "decimal_places": 12}
ZERO = Decimal("0")


class Currency(models.Model):
    """A currency staff have set up; `rate` is units of it per 1 base currency (EUR)."""

    class RateSource(models.TextChoices):
        BASE = "base", _("Base currency")
        ECB = "ecb", _("European Central Bank")
        FIXED = "fixed", _("Fixed rate set by staff")

    code = models.CharField(_("code"), max_length=3, primary_key=True)
    enabled = models.BooleanField(_("enabled"), default=True)
    position = models.PositiveSmallIntegerField(_("position"), default=0)
    rate_source = models.CharField(_("rate source"), max_length=8, choices=RateSource.choices, default=RateSource.ECB)
    rate = models.DecimalField(_("rate per 1 base unit"), **RATE, null=True, blank=True)
    rate_updated_at = models.DateTimeField(_("rate updated at"), null=True, blank=True)
    rate_feed_date = models.DateField(_("rate date in feed"), null=True, blank=True)

    class Meta:
        verbose_name = _("currency")
        verbose_name_plural = _("currencies")
        ordering = ["position", "code"]
        constraints = [models.CheckConstraint(condition=Q(rate__isnull=True) | Q(rate__gt=0), name="currency_rate_gt_0")]

    def __str__(self) -> str:
        return self.code


class RateSnapshot(models.Model):
    """Append-only rate history (`Currency.rate` holds only the current one)."""

    currency = models.CharField(_("currency"), max_length=3, db_index=True)
    base_currency = models.CharField(_("base currency"), max_length=3)
    value = models.DecimalField(_("rate"), **RATE)
    source = models.CharField(_("source"), max_length=8, choices=Currency.RateSource.choices)
    feed_date = models.DateField(_("date in feed"), null=True, blank=True)
    fetched_at = models.DateTimeField(_("recorded at"), auto_now_add=True, db_index=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+")

    class Meta:
        verbose_name = _("exchange rate snapshot")
        verbose_name_plural = _("exchange rate history")
        ordering = ["-fetched_at", "-pk"]
        constraints = [models.CheckConstraint(condition=Q(value__gt=0), name="ratesnapshot_value_gt_0")]

    def __str__(self) -> str:
        return f"1 {self.base_currency} = {self.value} {self.currency}"


class RateRefreshError(models.Model):
    """A failed rate refresh (network, malformed or empty feed); old rates stay in force."""

    created_at = models.DateTimeField(_("time"), auto_now_add=True, db_index=True)
    source = models.CharField(_("source"), max_length=8, choices=Currency.RateSource.choices)
    url = models.CharField(_("URL"), max_length=500, blank=True)
    message = models.TextField(_("error"))

    class Meta:
        verbose_name = _("rate refresh error")
        verbose_name_plural = _("rate refresh errors")
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M} {self.source}: {self.message[:60]}"


class TaxRate(models.Model):
    """Staff-configured tax per country and profile type (see docs/ARCHITECTURE.md, "Tax rule")."""

    class Profile(models.TextChoices):
        ANY = "any", _("Any profile")
        PRIVATE = "private", _("Private person")
        COMPANY = "company", _("Company")

    country = models.CharField(_("country code"), max_length=2)
    profile_type = models.CharField(_("profile type"), max_length=8, choices=Profile.choices, default=Profile.ANY)
    percent = models.DecimalField(_("rate, %"), max_digits=6, decimal_places=3)
    label = models.CharField(_("label"), max_length=64, default="VAT")
    reverse_charge = models.BooleanField(
        _("reverse charge"), default=False,
        help_text=_("Applies 0% with a reverse-charge note to verified companies with a VAT number."),
    )

    class Meta:
        verbose_name = _("tax rate")
        verbose_name_plural = _("tax rates")
        ordering = ["country", "profile_type"]
        constraints = [
            models.UniqueConstraint(fields=["country", "profile_type"], name="taxrate_country_profile_unique"),
            models.CheckConstraint(condition=Q(percent__gte=0) & Q(percent__lt=100), name="taxrate_percent_range"),
        ]

    def __str__(self) -> str:
        return f"{self.country} {self.get_profile_type_display()}: {self.percent}%"


class DocumentCounter(models.Model):
    """Gap-free numbering: one row per (series, year), incremented under a row lock."""

    series = models.CharField(max_length=8)
    year = models.PositiveSmallIntegerField()
    last_number = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["series", "year"], name="documentcounter_series_year_unique")]


class Invoice(ChoiceLabels, models.Model):
    class Kind(models.TextChoices):
        ADVANCE = "advance", _("Advance payment")
        ORDER = "order", _("Order")
        RENEWAL = "renewal", _("Renewal")
        PLAN_CHANGE = "plan_change", _("Service change")  # a plan upgrade or add-ons taken on a running service
        LATE_FEE = "late_fee", _("Late fee")

    class Status(models.TextChoices):
        UNPAID = "unpaid", _("Unpaid")
        IN_PROGRESS = "in_progress", _("Payment in progress")
        PAID = "paid", _("Paid")
        CANCELLED = "cancelled", _("Cancelled")
        REFUNDED = "refunded", _("Refunded")

    OPEN_STATUSES = (Status.UNPAID, Status.IN_PROGRESS)

    number = models.CharField(_("number"), max_length=20, unique=True)
    year = models.PositiveSmallIntegerField()
    sequence = models.PositiveIntegerField()
    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="invoices", verbose_name=_("customer"),
                                 db_index=False)  # indexed as the lead of (customer, -issued_at)
    kind = models.CharField(_("kind"), max_length=16, choices=Kind.choices)
    status = models.CharField(_("status"), max_length=16, choices=Status.choices, default=Status.UNPAID, db_index=True)
    currency = models.CharField(_("currency"), max_length=3)
    subtotal = models.DecimalField(_("subtotal"), **AMOUNT)
    tax_percent = models.DecimalField(_("tax rate, %"), max_digits=6, decimal_places=3, default=ZERO)
    tax_label = models.CharField(_("tax label"), max_length=64, blank=True)
    reverse_charge = models.BooleanField(_("reverse charge"), default=False)
    tax_amount = models.DecimalField(_("tax"), **AMOUNT, default=ZERO)
    total = models.DecimalField(_("total"), **AMOUNT)
    amount_paid = models.DecimalField(_("paid"), **AMOUNT, default=ZERO)
    # Payer details as they were when the invoice was issued.
    payer_name = models.CharField(_("payer"), max_length=255, blank=True)
    payer_company = models.CharField(_("company"), max_length=255, blank=True)
    payer_address = models.TextField(_("address"), blank=True)
    payer_country = models.CharField(_("country"), max_length=2, blank=True)
    payer_vat_number = models.CharField(_("VAT number"), max_length=64, blank=True)
    payer_email = models.EmailField(_("email"), blank=True)
    # The payer chosen for the invoice (null on invoices issued before payers existed: the profile).
    payer = models.ForeignKey("Payer", on_delete=models.PROTECT, null=True, blank=True, related_name="invoices", verbose_name=_("payer"))
    reference = models.CharField(_("reference"), max_length=100, blank=True, db_index=True)
    idempotency_key = models.CharField(max_length=200, unique=True, null=True, blank=True)
    issued_at = models.DateTimeField(_("issued"), auto_now_add=True)
    paid_at = models.DateTimeField(_("paid at"), null=True, blank=True)
    cancelled_at = models.DateTimeField(_("cancelled at"), null=True, blank=True)
    cancel_reason = models.CharField(_("cancellation reason"), max_length=255, blank=True)

    class Meta:
        verbose_name = _("invoice")
        verbose_name_plural = _("invoices")
        ordering = ["-issued_at", "-pk"]
        indexes = [
            models.Index(fields=["customer", "-issued_at"]), models.Index(fields=["customer", "status"]),
            # A customer's open invoices, oldest first, with what their sums read (the dashboard's list and
            # totals, the invoices page's "unpaid" filter): an index-only scan of the few open ones instead
            # of reading all of a heavy customer's paid invoices and filtering them out.
            models.Index(fields=["customer", "issued_at", "id"], include=["currency", "total", "amount_paid"],
                         condition=Q(status__in=["unpaid", "in_progress"]), name="invoice_open_by_customer"),
        ]
        constraints = [
            models.UniqueConstraint(fields=["year", "sequence"], name="invoice_year_sequence_unique"),
            models.CheckConstraint(condition=Q(total__gte=0) & Q(subtotal__gte=0) & Q(tax_amount__gte=0), name="invoice_amounts_gte_0"),
            models.CheckConstraint(condition=Q(amount_paid__gte=0) & Q(amount_paid__lte=F("total")), name="invoice_paid_within_total"),
            models.CheckConstraint(condition=~Q(status="paid") | Q(amount_paid=F("total")), name="invoice_paid_is_fully_paid"),
        ]

    def __str__(self) -> str:
        return self.number

    @property
    def amount_due(self) -> Decimal:
        return self.total - self.amount_paid

    @property
    def is_open(self) -> bool:
        return self.status in self.OPEN_STATUSES


class InvoiceLine(models.Model):
    invoice = models.ForeignKey(Invoice, on_delete=models.CASCADE, related_name="lines")
    position = models.PositiveSmallIntegerField(default=0)
    description = models.CharField(_("description"), max_length=255)
    quantity = models.PositiveIntegerField(_("quantity"))
    unit_price = models.DecimalField(_("unit price"), **AMOUNT)
    amount = models.DecimalField(_("amount"), **AMOUNT)
    reference = models.CharField(_("reference"), max_length=100, blank=True)
    # A promo-code discount: the one kind of line with a negative price. Revenue and tax follow the
    # invoice subtotal, so a discount line lowers both.
    is_discount = models.BooleanField(_("discount"), default=False)

    class Meta:
        ordering = ["position", "pk"]
        constraints = [
            models.CheckConstraint(condition=Q(quantity__gte=1) & (Q(unit_price__gte=0) | Q(is_discount=True)),
                                   name="invoiceline_positive"),
            models.CheckConstraint(condition=Q(is_discount=False) | Q(unit_price__lte=0), name="invoiceline_discount_negative"),
        ]


class Payment(ChoiceLabels, models.Model):
    """Money received from outside (gateway, bank transfer, staff), recorded once per idempotency key."""

    class Status(models.TextChoices):
        PENDING = "pending", _("Pending")
        SUCCEEDED = "succeeded", _("Succeeded")
        FAILED = "failed", _("Failed")
        REFUNDED = "refunded", _("Refunded")

    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="payments", verbose_name=_("customer"))
    invoice = models.ForeignKey(Invoice, on_delete=models.PROTECT, null=True, blank=True, related_name="payments", verbose_name=_("invoice"))
    idempotency_key = models.CharField(_("idempotency key"), max_length=200, unique=True)
    method = models.CharField(_("method"), max_length=32)
    gateway = models.CharField(_("gateway"), max_length=32, blank=True)
    external_id = models.CharField(_("external ID"), max_length=200, blank=True)
    amount = models.DecimalField(_("amount"), **AMOUNT)
    currency = models.CharField(_("currency"), max_length=3)
    status = models.CharField(_("status"), max_length=16, choices=Status.choices, default=Status.SUCCEEDED)
    # What reached the balance when the payment was converted into the account currency.
    credited_amount = models.DecimalField(_("credited amount"), **AMOUNT, null=True, blank=True)
    credited_currency = models.CharField(_("credited currency"), max_length=3, blank=True)
    rate = models.DecimalField(_("exchange rate"), **RATE, null=True, blank=True)
    rate_as_of = models.DateTimeField(_("rate time"), null=True, blank=True)
    # Captured money is always recorded: at the last known rate when it was stale, flagged for staff.
    rate_stale = models.BooleanField(_("converted at a stale rate"), default=False, db_index=True)
    refunded_amount = models.DecimalField(_("refunded"), **AMOUNT, default=ZERO)
    memo = models.CharField(_("note"), max_length=255, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    created_at = models.DateTimeField(_("date"), auto_now_add=True, db_index=True)

    class Meta:
        verbose_name = _("payment")
        verbose_name_plural = _("payments")
        ordering = ["-created_at", "-pk"]
        # The Payments page's order in full: with the id too, a customer owning half the table gets its
        # newest page from this index, not from a walk of every payment's date (1.1 ms → 0.05 ms).
        indexes = [models.Index(fields=["customer", "-created_at", "-id"], name="payment_customer_newest")]
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="payment_amount_gt_0"),
            models.CheckConstraint(condition=Q(refunded_amount__gte=0) & Q(refunded_amount__lte=F("amount")),
                                   name="payment_refunded_within_amount"),
            models.UniqueConstraint(fields=["gateway", "external_id"], condition=~Q(external_id=""), name="payment_gateway_external_id_unique"),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.amount} {self.currency}"


class LedgerAccount(models.Model):
    class Kind(models.TextChoices):
        CUSTOMER = "customer", _("Customer balance")
        CLEARING = "clearing", _("Gateway clearing")
        HOLDING = "holding", _("Invoice payments in progress")
        REVENUE = "revenue", _("Revenue")
        TAX = "tax", _("Tax payable")
        FX = "fx", _("Currency exchange")
        ADJUSTMENT = "adjustment", _("Manual adjustments")
        REFUNDING = "refunding", _("Refunds being sent")

    code = models.CharField(_("code"), max_length=100, unique=True)
    kind = models.CharField(_("kind"), max_length=16, choices=Kind.choices)
    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, null=True, blank=True, related_name="ledger_accounts")
    currency = models.CharField(_("currency"), max_length=3)
    balance = models.DecimalField(_("balance"), **AMOUNT, default=ZERO)
    credit_limit = models.DecimalField(_("credit limit"), **AMOUNT, default=ZERO)
    # Low-balance alert state: set when the balance crosses below the threshold, cleared above it.
    low_balance_alerted = models.BooleanField(default=False)
    low_balance_crossings = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = _("ledger account")
        verbose_name_plural = _("ledger accounts")
        ordering = ["pk"]
        constraints = [
            models.UniqueConstraint(fields=["customer", "currency"], condition=Q(kind="customer"), name="ledgeraccount_customer_currency_unique"),
            models.CheckConstraint(condition=Q(kind="customer", customer__isnull=False) | (~Q(kind="customer") & Q(customer__isnull=True)), name="ledgeraccount_customer_iff_customer_kind"),
            models.CheckConstraint(condition=~Q(kind="customer") | Q(balance__gte=-F("credit_limit")), name="ledgeraccount_customer_within_credit_limit"),
            models.CheckConstraint(condition=Q(credit_limit__gte=0), name="ledgeraccount_credit_limit_gte_0"),
        ]

    def __str__(self) -> str:
        return self.code


class LedgerTransaction(models.Model):
    class Kind(models.TextChoices):
        TOPUP = "topup", _("Top-up")
        CHARGE = "charge", _("Charge")
        REFUND = "refund", _("Refund")
        ADJUSTMENT = "adjustment", _("Adjustment")
        CONVERSION = "conversion", _("Currency conversion")
        REVERSAL = "reversal", _("Reversal")

    idempotency_key = models.CharField(max_length=200, unique=True)
    kind = models.CharField(_("kind"), max_length=16, choices=Kind.choices)
    created_at = models.DateTimeField(_("date"), auto_now_add=True, db_index=True)
    invoice = models.ForeignKey(Invoice, on_delete=models.PROTECT, null=True, blank=True, related_name="ledger_transactions")
    payment = models.ForeignKey(Payment, on_delete=models.PROTECT, null=True, blank=True, related_name="ledger_transactions")
    reference = models.CharField(_("reference"), max_length=100, blank=True)
    memo = models.CharField(_("description"), max_length=255, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    # Conversions: the rate used (units of rate_to per 1 rate_from) and when it was published.
    rate = models.DecimalField(_("exchange rate"), **RATE, null=True, blank=True)
    rate_from = models.CharField(max_length=3, blank=True)
    rate_to = models.CharField(max_length=3, blank=True)
    rate_as_of = models.DateTimeField(_("rate time"), null=True, blank=True)

    class Meta:
        verbose_name = _("ledger transaction")
        verbose_name_plural = _("ledger transactions")
        ordering = ["-pk"]

    def __str__(self) -> str:
        return f"#{self.pk} {self.kind} {self.memo}"


class LedgerEntry(models.Model):
    transaction = models.ForeignKey(LedgerTransaction, on_delete=models.PROTECT, related_name="entries")
    account = models.ForeignKey(LedgerAccount, on_delete=models.PROTECT, related_name="entries",
                                db_index=False)  # indexed as the lead of (account, -id)
    amount = models.DecimalField(_("amount"), **AMOUNT)
    currency = models.CharField(_("currency"), max_length=3)
    balance_after = models.DecimalField(_("balance after"), **AMOUNT)

    class Meta:
        verbose_name = _("ledger entry")
        verbose_name_plural = _("ledger entries")
        ordering = ["pk"]
        indexes = [models.Index(fields=["account", "-id"])]
        constraints = [models.CheckConstraint(condition=~Q(amount=0), name="ledgerentry_amount_nonzero")]


class BalanceFunding(models.Model):
    """What paid for what (the Expenses page, "Payments" column): a part of a debit of a customer's balance
    and the credit it consumed, oldest credit first (source empty: beyond the balance, on credit), or a
    service invoice paid directly by a payment (no debit). Written with the ledger transaction that
    spends the money (`billing.funding`); `audit_ledger` replays the rule and compares."""

    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="+")
    transaction = models.ForeignKey(LedgerTransaction, on_delete=models.PROTECT, related_name="funding")
    # Both indexed as the lead of an index below: debit of the unique (debit, source) one, whose condition
    # (debit not null) any `debit_id = x` implies; account of (account, source).
    debit = models.ForeignKey(LedgerEntry, on_delete=models.PROTECT, null=True, blank=True, related_name="funded_by",
                              db_index=False)
    account = models.ForeignKey(LedgerAccount, on_delete=models.PROTECT, null=True, blank=True, related_name="+",
                                db_index=False)
    source = models.ForeignKey(LedgerEntry, on_delete=models.PROTECT, null=True, blank=True, related_name="funds")
    source_kind = models.CharField(max_length=16, blank=True)  # the source credit's transaction kind
    payment = models.ForeignKey(Payment, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    amount = models.DecimalField(**AMOUNT)
    currency = models.CharField(max_length=3)
    expense = models.BooleanField()  # a charge or a direct payment (shown); else a debit that only used the queue

    class Meta:
        ordering = ["pk"]
        indexes = [
            # The Expenses page: the customer's spending transactions, newest first.
            models.Index(fields=["customer", "-transaction"], condition=Q(expense=True), name="balancefunding_expenses"),
            # The queue's head: the newest credit consumed on an account.
            models.Index(fields=["account", "source"], name="balancefunding_account_source"),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="balancefunding_amount_gt_0"),
            models.CheckConstraint(
                condition=Q(debit__isnull=False, account__isnull=False)
                | Q(debit__isnull=True, account__isnull=True, source__isnull=True, payment__isnull=False),
                name="balancefunding_debit_or_direct_payment"),
            models.UniqueConstraint(fields=["debit", "source"], condition=Q(debit__isnull=False), nulls_distinct=False,
                                    name="balancefunding_debit_source_once"),
            models.UniqueConstraint(fields=["transaction", "payment"], condition=Q(debit__isnull=True),
                                    name="balancefunding_direct_once"),
        ]


class CreditNote(models.Model):
    """A refund document against a paid invoice; numbered in its own gap-free series (CN-2026-000001)."""

    number = models.CharField(_("number"), max_length=24, unique=True)
    invoice = models.ForeignKey(Invoice, on_delete=models.PROTECT, related_name="credit_notes", verbose_name=_("invoice"))
    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="credit_notes")
    amount = models.DecimalField(_("amount"), **AMOUNT)
    tax_amount = models.DecimalField(_("tax"), **AMOUNT, default=ZERO)
    currency = models.CharField(_("currency"), max_length=3)
    reason = models.CharField(_("reason"), max_length=255)
    created_at = models.DateTimeField(_("date"), auto_now_add=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    ledger_transaction = models.OneToOneField(LedgerTransaction, on_delete=models.PROTECT, related_name="credit_note")
    # Set when the money went back to the card or bank account it came from (else: to the balance).
    payment = models.ForeignKey("Payment", on_delete=models.PROTECT, null=True, blank=True, related_name="credit_notes",
                                verbose_name=_("refunded to payment"))

    class Meta:
        verbose_name = _("credit note")
        verbose_name_plural = _("credit notes")
        ordering = ["-created_at", "-pk"]
        constraints = [models.CheckConstraint(condition=Q(amount__gt=0), name="creditnote_amount_gt_0")]

    def __str__(self) -> str:
        return self.number


class PaymentRefund(models.Model):
    """Money sent back to where a payment came from (card through its gateway, or bank transfer).

    Reserved first (its idempotency key is fixed and the money moved to the `refunding` account, all
    committed) before the gateway is called with that key; then completed or failed."""

    class Status(models.TextChoices):
        PENDING = "pending", _("Pending")
        SUCCEEDED = "succeeded", _("Succeeded")
        FAILED = "failed", _("Failed")

    payment = models.ForeignKey(Payment, on_delete=models.PROTECT, related_name="refunds", verbose_name=_("payment"))
    sequence = models.PositiveSmallIntegerField()
    idempotency_key = models.CharField(_("idempotency key"), max_length=200, unique=True)
    amount = models.DecimalField(_("amount"), **AMOUNT)
    currency = models.CharField(_("currency"), max_length=3)
    # What the refund takes back from the paid invoice (revenue and tax) and from the balance.
    invoice_part = models.DecimalField(_("from the invoice"), **AMOUNT, default=ZERO)
    balance_part = models.DecimalField(_("from the balance"), **AMOUNT, default=ZERO)
    status = models.CharField(_("status"), max_length=16, choices=Status.choices, default=Status.PENDING, db_index=True)
    external_id = models.CharField(_("refund reference"), max_length=200, blank=True)
    reason = models.CharField(_("reason"), max_length=255)
    failure_message = models.CharField(_("failure"), max_length=255, blank=True)
    credit_note = models.OneToOneField(CreditNote, on_delete=models.PROTECT, null=True, blank=True, related_name="payment_refund")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    created_at = models.DateTimeField(_("date"), auto_now_add=True)
    completed_at = models.DateTimeField(_("completed at"), null=True, blank=True)

    class Meta:
        verbose_name = _("payment refund")
        verbose_name_plural = _("payment refunds")
        ordering = ["-created_at", "-pk"]
        constraints = [
            models.UniqueConstraint(fields=["payment", "sequence"], name="paymentrefund_payment_sequence_unique"),
            models.CheckConstraint(condition=Q(amount__gt=0) & Q(amount=F("invoice_part") + F("balance_part"))
                                   & Q(invoice_part__gte=0) & Q(balance_part__gte=0), name="paymentrefund_parts_sum_to_amount"),
        ]

    def __str__(self) -> str:
        return f"{self.idempotency_key} {self.amount} {self.currency} ({self.status})"


class Payer(models.Model):
    """Who an invoice, act or contract is made out to. A customer keeps several; the *profile* payer
    (one per customer, created on first use) has no details of its own: it mirrors the customer's
    profile (accounts), so there is one source of truth for them. Company payers need staff verification."""

    class Type(models.TextChoices):
        PRIVATE = "private", _("Private person")
        COMPANY = "company", _("Company")

    class Verification(models.TextChoices):
        NOT_REQUIRED = "not_required", _("Not required")
        PENDING = "pending", _("Awaiting verification")
        VERIFIED = "verified", _("Verified")
        REJECTED = "rejected", _("Rejected")

    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="payers", verbose_name=_("customer"))
    is_profile = models.BooleanField(_("from the profile"), default=False)
    payer_type = models.CharField(_("payer type"), max_length=10, choices=Type.choices, default=Type.PRIVATE)
    name = models.CharField(_("full name"), max_length=255, blank=True)
    company_name = models.CharField(_("company name"), max_length=255, blank=True)
    registration_number = models.CharField(_("registration number"), max_length=64, blank=True)
    vat_number = models.CharField(_("VAT number"), max_length=64, blank=True)
    street = models.CharField(_("address"), max_length=255, blank=True)
    city = models.CharField(_("city"), max_length=120, blank=True)
    postcode = models.CharField(_("postcode"), max_length=20, blank=True)
    country = models.CharField(_("country"), max_length=2, blank=True)
    email = models.EmailField(_("email for documents"), blank=True)
    verification_status = models.CharField(_("verification status"), max_length=16, choices=Verification.choices,
                                           default=Verification.NOT_REQUIRED, db_index=True)
    verification_note = models.CharField(_("verification note"), max_length=255, blank=True)
    verified_at = models.DateTimeField(_("verified at"), null=True, blank=True)
    # Tax evidence: staff accepted a country other than the profile's (cleared when the country changes).
    country_approved_at = models.DateTimeField(_("country approved for tax at"), null=True, blank=True)
    # The last VIES answer on the VAT number (billing/vat.py): valid / invalid / unavailable.
    vies_status = models.CharField(_("VIES status"), max_length=16, blank=True)
    vies_checked_at = models.DateTimeField(_("VIES checked at"), null=True, blank=True)
    vies_consultation_number = models.CharField(_("VIES consultation number"), max_length=64, blank=True)
    archived_at = models.DateTimeField(_("archived at"), null=True, blank=True)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)

    class Meta:
        verbose_name = _("payer")
        verbose_name_plural = _("payers")
        ordering = ["-is_profile", "pk"]
        constraints = [
            models.UniqueConstraint(fields=["customer"], condition=Q(is_profile=True), name="payer_one_profile_payer"),
            models.CheckConstraint(
                condition=Q(is_profile=True) | Q(payer_type="private") | ~Q(verification_status="not_required"),
                name="payer_company_needs_verification_state",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.customer_id}: {self.company_name or self.name or _('Profile')}"


class Act(models.Model):
    """Monthly certificate of services rendered, per (customer, payer, currency, month); gap-free
    numbered (ACT-YYYY-NNNNNN). Its lines are the service invoices paid that month."""

    number = models.CharField(_("number"), max_length=24, unique=True)
    year = models.PositiveSmallIntegerField()
    sequence = models.PositiveIntegerField()
    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="acts", verbose_name=_("customer"))
    payer = models.ForeignKey(Payer, on_delete=models.PROTECT, related_name="acts", verbose_name=_("payer"))
    currency = models.CharField(_("currency"), max_length=3)
    period = models.DateField(_("month"), help_text=_("First day of the month covered."))
    subtotal = models.DecimalField(_("subtotal"), **AMOUNT)
    tax_amount = models.DecimalField(_("tax"), **AMOUNT, default=ZERO)
    total = models.DecimalField(_("total"), **AMOUNT)
    payer_name = models.CharField(_("payer"), max_length=255, blank=True)
    payer_company = models.CharField(_("company"), max_length=255, blank=True)
    payer_address = models.TextField(_("address"), blank=True)
    payer_country = models.CharField(_("country"), max_length=2, blank=True)
    payer_vat_number = models.CharField(_("VAT number"), max_length=64, blank=True)
    payer_registration_number = models.CharField(_("registration number"), max_length=64, blank=True)
    created_at = models.DateTimeField(_("issued"), auto_now_add=True)

    class Meta:
        verbose_name = _("act")
        verbose_name_plural = _("acts")
        ordering = ["-period", "-pk"]
        indexes = [models.Index(fields=["customer", "-period"])]
        constraints = [
            models.UniqueConstraint(fields=["customer", "payer", "currency", "period"], name="act_one_per_payer_currency_month"),
            models.UniqueConstraint(fields=["year", "sequence"], name="act_year_sequence_unique"),
            models.CheckConstraint(condition=Q(subtotal__gte=0) & Q(tax_amount__gte=0) & Q(total=F("subtotal") + F("tax_amount")),
                                   name="act_total_is_subtotal_plus_tax"),
        ]

    def __str__(self) -> str:
        return self.number


class ActLine(models.Model):
    """One paid service invoice on an act."""

    act = models.ForeignKey(Act, on_delete=models.CASCADE, related_name="lines")
    position = models.PositiveSmallIntegerField(default=0)
    invoice = models.ForeignKey(Invoice, on_delete=models.PROTECT, related_name="act_lines")
    description = models.CharField(_("description"), max_length=500)
    date = models.DateTimeField(_("date"))
    subtotal = models.DecimalField(_("subtotal"), **AMOUNT)
    tax_amount = models.DecimalField(_("tax"), **AMOUNT)
    total = models.DecimalField(_("total"), **AMOUNT)

    class Meta:
        ordering = ["position", "pk"]
        constraints = [models.UniqueConstraint(fields=["invoice"], name="actline_invoice_once")]


class ContractVersion(models.Model):
    """The provider's customer agreement. Staff write drafts in admin and publish them; a published
    version never changes (customers accepted that text): a change is a new version."""

    version = models.PositiveIntegerField(_("version"), unique=True)
    title = models.CharField(_("title"), max_length=200)
    text = models.TextField(_("text"), help_text=_("Plain text; blank lines separate paragraphs."))
    published_at = models.DateTimeField(_("published at"), null=True, blank=True, db_index=True)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)

    class Meta:
        verbose_name = _("contract version")
        verbose_name_plural = _("contract versions")
        ordering = ["-version"]

    def __str__(self) -> str:
        return f"{self.title} v{self.version}"


class ContractAcceptance(models.Model):
    """A payer accepted a contract version online: when, from which IP, by which login."""

    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="contract_acceptances")
    payer = models.ForeignKey(Payer, on_delete=models.PROTECT, related_name="contract_acceptances", verbose_name=_("payer"))
    version = models.ForeignKey(ContractVersion, on_delete=models.PROTECT, related_name="acceptances", verbose_name=_("version"))
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+", verbose_name=_("accepted by"))
    accepted_at = models.DateTimeField(_("accepted at"), auto_now_add=True)
    ip = models.GenericIPAddressField(_("IP address"), null=True, blank=True)
    # The payer as printed on the accepted contract.
    payer_label = models.CharField(_("payer"), max_length=255)
    payer_details = models.JSONField(_("payer details"), default=dict)

    class Meta:
        verbose_name = _("contract acceptance")
        verbose_name_plural = _("contract acceptances")
        ordering = ["-accepted_at", "-pk"]
        constraints = [models.UniqueConstraint(fields=["payer", "version"], name="contractacceptance_payer_version_unique")]

    def __str__(self) -> str:
        return f"{self.payer_label} v{self.version_id}"


class DunningNotice(models.Model):
    """One dunning step of one invoice: `step` is its day relative to the due date (negative before).
    The unique pair makes each reminder go out at most once however many jobs run; a step passed while
    a later one was already due is recorded unsent (`notified` false) so it never goes out late."""

    invoice = models.ForeignKey(Invoice, on_delete=models.CASCADE, related_name="dunning_notices")
    step = models.SmallIntegerField()
    notified = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["invoice_id", "step"]
        constraints = [models.UniqueConstraint(fields=["invoice", "step"], name="dunning_notice_once_per_step")]
