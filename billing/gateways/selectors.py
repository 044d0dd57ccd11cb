"""Gateway reads, scoped to the acting customer (another customer's id is a 404)."""
import uuid

from django.shortcuts import get_object_or_404

from accounts.models import Customer
from billing.models import Invoice

from .base import Gateway
from .models import AutopayCharge, AutopaySettings, GatewayConfig, PaymentAttempt, SavedPaymentMethod
from .registry import all_gateways, get_gateway


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


def gateways_available(*, customer: Customer, currency: str, saved_methods_only: bool = False) -> list[Gateway]:
    configs = {config.code: config for config in GatewayConfig.objects.all()}
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


def attempts_in_flight_for(customer: Customer):
    return (PaymentAttempt.objects.filter(customer=customer, status=PaymentAttempt.Status.PENDING).exclude(transaction_id="")
            .select_related("invoice").order_by("-created_at"))


def payments_in_progress(customer: Customer) -> list[dict]:
    """Billing's payments page rows (billing.hooks) for card payments awaiting confirmation."""
    rows = []
    for attempt in attempts_in_flight_for(customer):
        gateway = get_gateway(attempt.gateway)
        rows.append({"amount": attempt.amount, "currency": attempt.currency, "method": str(gateway.name if gateway else attempt.gateway),
                     "invoice": attempt.invoice, "created_at": attempt.created_at})
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


def autopay_settings_for(customer: Customer) -> AutopaySettings | None:
    return AutopaySettings.objects.select_related("method").filter(customer=customer).first()


def autopay_charges_for(customer: Customer):
    return AutopayCharge.objects.filter(customer=customer).select_related("attempt")
