"""Gateway reads, scoped to the acting customer (another customer's id is a 404)."""
import logging
import uuid
from datetime import date
from decimal import Decimal

from django.db.models import Sum
from django.shortcuts import get_object_or_404
from django.utils import timezone

from accounts.models import Customer
from billing import hooks
from billing.models import Invoice
from billing.money import quantize
from billing.rates import RateTable, rate_per_base
from billing.selectors import InvoiceRef, invoices_for
from core.compiled import STAND_IN, CompiledQuery

from .base import Gateway
from .models import AutopayCharge, AutopaySettings, GatewayConfig, PaymentAttempt, SavedPaymentMethod
from .registry import all_gateways, get_gateway

logger = logging.getLogger(__name__)


def gateway_offered(gateway: Gateway, *, currency: str, country: str, configs: dict | None = None) -> bool:
    """Configured by the deployment (keys), enabled by staff for this currency and country."""
    if not gateway.is_configured():
        return False
    supported = gateway.supported_currencies()
    if supported is not None and currency not in supported:
        return False
    if configs is None:
        config = GatewayConfig.objects.filter(code=gateway.code).first()
    else:
        config = configs.get(gateway.code)
    return config is not None and config.allows(currency=currency, country=country)


_GATEWAY_CONFIGS = CompiledQuery(lambda: GatewayConfig.objects.all())  # read by every open invoice's page


def gateways_available(*, customer: Customer, currency: str, saved_methods_only: bool = False) -> list[Gateway]:
    configs = {config.code: config for config in _GATEWAY_CONFIGS()}
    gateways = [
        gateway for gateway in all_gateways()
        if gateway_offered(gateway, currency=currency, country=customer.country, configs=configs)
        and (gateway.supports_saved_methods or not saved_methods_only)
    ]
    return sorted(gateways, key=lambda gateway: configs[gateway.code].position)


def payment_methods_for(customer: Customer):
    return SavedPaymentMethod.objects.filter(customer=customer).order_by("-is_default", "-created_at", "-pk")


def saved_methods_for_invoice(*, customer: Customer, invoice):
    """The customer's saved methods that can pay this invoice now: at a gateway offered for its currency
    and the customer's country that charges saved methods."""
    codes = [g.code for g in gateways_available(customer=customer, currency=invoice.currency, saved_methods_only=True)]
    return payment_methods_for(customer).filter(gateway__in=codes)


def payment_method_get(*, customer: Customer, method_id: int) -> SavedPaymentMethod:
    return get_object_or_404(SavedPaymentMethod, customer=customer, pk=method_id)


def attempt_get(*, customer: Customer, reference) -> PaymentAttempt:
    return get_object_or_404(PaymentAttempt.objects.select_related("invoice"), customer=customer, reference=reference)


def attempt_in_flight(invoice: Invoice) -> PaymentAttempt | None:
    """A payment the gateway accepted and is still processing (e.g. a card awaiting confirmation):
    while it lasts, the invoice must not be paid again by another method."""
    return (PaymentAttempt.objects.filter(invoice=invoice, status=PaymentAttempt.Status.PENDING).exclude(transaction_id="")
            .order_by("-created_at").first())


def attempts_in_flight_for(customer: Customer | int):
    return (PaymentAttempt.objects.filter(customer=customer, status=PaymentAttempt.Status.PENDING).exclude(transaction_id="")
            .select_related("invoice").order_by("-created_at"))


_IN_FLIGHT_ROWS = CompiledQuery(
    lambda customer_id: attempts_in_flight_for(customer_id).values_list("amount", "currency", "gateway", "invoice_id",
                                                                        "invoice__number", "created_at"),
    customer_id=STAND_IN)


def payments_in_progress(customer: Customer) -> list[dict]:
    """Billing's payments page rows (billing.hooks) for card payments awaiting confirmation: plain rows,
    the query compiled once (the page asks on every visit and almost always finds none)."""
    rows = []
    for amount, currency, code, invoice_id, number, created_at in _IN_FLIGHT_ROWS(customer_id=customer.pk):
        gateway = get_gateway(code)
        rows.append({"amount": amount, "currency": currency, "method": str(gateway.name if gateway else code),
                     "invoice": InvoiceRef(invoice_id, number) if invoice_id else None, "created_at": created_at})
    return rows


def pay_link_invoice(*, invoice_id: int, customer_id: int) -> Invoice:
    """The invoice a verified pay-without-login token was made for (scoped to the token's customer)."""
    return get_object_or_404(Invoice.objects.select_related("customer"), pk=invoice_id, customer_id=customer_id)


def pay_link_attempt(*, invoice: Invoice, reference: str) -> PaymentAttempt | None:
    """The payment a pay-without-login visitor just returned from, if `reference` names one for this invoice."""
    try:
        reference = uuid.UUID(reference)
    except ValueError:
        return None
    return PaymentAttempt.objects.filter(invoice=invoice, via_pay_link=True, reference=reference).first()


# Read by every dashboard (the renewal forecast) and balance page: built and compiled once per process.
_SETTINGS_FOR = CompiledQuery(lambda customer_id: AutopaySettings.objects.select_related("method").filter(
    customer_id=customer_id).order_by("pk")[:1], customer_id=STAND_IN)


def card_auto_top_up_settings_for(customer: Customer) -> AutopaySettings | None:
    found = _SETTINGS_FOR(customer_id=customer.pk)
    return found[0] if found else None


def card_auto_top_up_charges_for(customer: Customer):
    return AutopayCharge.objects.filter(customer=customer).select_related("attempt")


# --- saved-card auto top-up -----------------------------------------------------------------

def card_auto_top_up_month_used(*, customer: Customer, today: date) -> Decimal:
    """This month's pending and succeeded auto-payment charges in the account currency. Charges made
    before an account currency change count at the last known rate (stale or not: it only measures the
    cap), so switching the currency never resets what is left of the month's maximum."""
    rows = (AutopayCharge.objects.filter(
        customer=customer, day__gte=today.replace(day=1), day__lte=today,
        status__in=[AutopayCharge.Status.PENDING, AutopayCharge.Status.SUCCEEDED],
    ).values("currency").annotate(total=Sum("amount")).order_by("currency"))
    used, table = Decimal("0"), None
    for row in rows:
        if row["currency"] == customer.currency:
            used += row["total"]
            continue
        table = table or RateTable()
        source, target = table.by_code.get(row["currency"]), table.by_code.get(customer.currency)
        if source is None or target is None or rate_per_base(source) is None or rate_per_base(target) is None:
            logger.warning("No rate to count %s %s of auto-payment against the cap of customer %s",
                           row["total"], row["currency"], customer.pk)
            continue
        used += quantize(row["total"] * rate_per_base(target) / rate_per_base(source), customer.currency)
    return used


def _open_service_invoices_due(customer: Customer) -> Decimal:
    open_invoices = (invoices_for(customer).filter(status__in=Invoice.OPEN_STATUSES, currency=customer.currency,
                                                   kind__in=[Invoice.Kind.RENEWAL, Invoice.Kind.ORDER])
                     .values_list("total", "amount_paid"))
    return sum((total - paid for total, paid in open_invoices), Decimal("0"))


def card_auto_top_up_needed_amount(*, customer: Customer, balance: Decimal, now=None) -> Decimal:
    """What the auto-payment page promises: enough to cover the next month of services — the open
    renewal/order invoices plus what the next month's renewals that have no invoice yet will cost
    (`billing.hooks.upcoming_charges`, from orders) — and never less than what keeps the balance at
    the low-balance threshold after the open invoices. `card_auto_top_up_charge` caps it by the monthly maximum."""
    due = _open_service_invoices_due(customer)
    next_month = hooks.upcoming_charges(customer=customer, now=now or timezone.now())
    return max(Decimal("0"), due + max(next_month, customer.low_balance_threshold) - balance)


def card_auto_top_up_is_due(*, customer: Customer, balance: Decimal) -> bool:
    """The page's triggers: the balance is below the low-balance threshold, or open renewal/order
    invoices are waiting for more than the balance holds."""
    return balance < customer.low_balance_threshold or _open_service_invoices_due(customer) > balance
