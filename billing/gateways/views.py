
from django.conf import settings
from django.contrib import messages
from django.core import signing
from django.http import Http404, HttpResponse, HttpResponseNotAllowed
from django.shortcuts import get_object_or_404, redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from accounts.client_ip import client_ip
from core.calendar import provider_today
from accounts.models import Customer
from accounts.roles import Area, acting_customer, customer_view
from billing.models import Invoice
from billing.money import quantize
from billing.selectors import balance_of, invoice_get, invoice_payment_blockers
from billing.services.errors import blockers_need_profile

from . import sandbox_provider, selectors, services
from .forms import AddMethodForm, AutopayForm, PayInvoiceForm, PaySavedMethodForm, SandboxCardForm
from .models import PaymentAttempt, SandboxCheckout
from .registry import get_gateway


def _return_urls(request, *, pay_link_path: str = ""):
    def build(attempt: PaymentAttempt) -> tuple[str, str]:
        if pay_link_path:
            url = request.build_absolute_uri(f"{pay_link_path}?attempt={attempt.reference}")
            return url, url
        url = request.build_absolute_uri(reverse("gateways:attempt", kwargs={"reference": attempt.reference}))
        return url, url + "?cancelled=1"

    return build


def _pay_context(*, customer: Customer, invoice: Invoice, form, show_balance: bool) -> dict:
    gateways = selectors.gateways_available(customer=customer, currency=invoice.currency)
    bank = get_gateway("bank_transfer")
    balance = balance_of(customer) if show_balance else None
    blockers = invoice_payment_blockers(invoice)
    return {
        "invoice": invoice,
        "form": form,
        "gateways": [g for g in gateways if g.redirects],
        "bank_transfer": bank.instructions(reference=invoice.number) if bank in gateways else None,
        "balance": balance,
        "can_use_balance": show_balance and invoice.kind != Invoice.Kind.ADVANCE and balance > 0
        and customer.currency == invoice.currency,
        "blockers": blockers,
        "profile_incomplete": blockers_need_profile(blockers),
        "saved_methods_supported": any(g.supports_saved_methods for g in gateways),
    }


def _start(request, *, customer, invoice, form, via_pay_link=False, pay_link_path=""):
    """Shared by the logged-in pay page and the pay-without-login page; returns a response or None."""
    try:
        started = services.payment_start(
            customer=customer, invoice=invoice, gateway_code=form.cleaned_data["gateway"],
            use_balance=form.cleaned_data.get("use_balance", False) and not via_pay_link,
            save_method=form.cleaned_data.get("save_method", False) and not via_pay_link, via_pay_link=via_pay_link,
            return_url_for=_return_urls(request, pay_link_path=pay_link_path),
        )
    except services.PaymentNotAllowed as exc:
        form.add_error(None, str(exc))
        return None
    if started.invoice_paid:
        messages.success(request, _("Invoice %(number)s was paid from your balance.") % {"number": invoice.number})
        return redirect(reverse("gateways:pay_invoice", kwargs={"invoice_id": invoice.pk}))
    return redirect(started.result.redirect_url)


@customer_view(Area.BILLING)
def pay_invoice(request, invoice_id: int):
    customer = acting_customer(request)
    invoice = invoice_get(customer=customer, invoice_id=invoice_id)
    gateways = selectors.gateways_available(customer=customer, currency=invoice.currency)
    paying_saved = request.method == "POST" and "saved_method" in request.POST
    form = PayInvoiceForm(request.POST if request.method == "POST" and not paying_saved else None,
                          gateways=[g for g in gateways if g.redirects])
    saved_form = PaySavedMethodForm(request.POST if paying_saved else None,
                                    methods=selectors.saved_methods_for_invoice(customer=customer, invoice=invoice))
    if paying_saved and invoice.is_open and saved_form.is_valid():
        try:
            started = services.payment_with_saved_method(customer=customer, invoice=invoice,
                                                         method=saved_form.cleaned_data["saved_method"],
                                                         use_balance=saved_form.cleaned_data["use_balance"])
        except services.PaymentNotAllowed as exc:
            saved_form.add_error(None, str(exc))
        else:
            if started.invoice_paid:
                messages.success(request, _("Invoice %(number)s is paid. Thank you!") % {"number": invoice.number})
            else:
                messages.info(request, _("The payment is being processed; the invoice shows it once the card issuer confirms."))
            return redirect(reverse("gateways:pay_invoice", kwargs={"invoice_id": invoice.pk}))
    elif request.method == "POST" and not paying_saved and invoice.is_open and form.is_valid():
        response = _start(request, customer=customer, invoice=invoice, form=form)
        if response is not None:
            return response
    context = _pay_context(customer=customer, invoice=invoice, form=form, show_balance=True)
    context["saved_form"] = saved_form
    context["pay_link"] = services.pay_link_url(invoice=invoice)
    in_flight = selectors.attempt_in_flight(invoice) if invoice.is_open else None
    context["in_flight"] = services.in_flight_message(in_flight) if in_flight else ""
    return render(request, "gateways/pay_invoice.html", context)


@customer_view(Area.BILLING)
def attempt_status(request, reference):
    attempt = selectors.attempt_get(customer=acting_customer(request), reference=reference)
    context = {"attempt": attempt, "cancelled": request.GET.get("cancelled") == "1"}
    if request.htmx:
        return render(request, "gateways/partials/attempt_status.html", context)
    return render(request, "gateways/attempt.html", context)


@customer_view(Area.BILLING)
def payment_methods(request):
    customer = acting_customer(request)
    gateways = selectors.gateways_available(customer=customer, currency=customer.currency, saved_methods_only=True)
    form = AddMethodForm(request.POST or None, gateways=gateways)
    if request.method == "POST" and form.is_valid():
        try:
            started = services.method_setup_start(customer=customer, gateway_code=form.cleaned_data["gateway"],
                                                  return_url_for=_return_urls(request))
        except services.PaymentNotAllowed as exc:
            messages.error(request, str(exc))
        else:
            return redirect(started.result.redirect_url)
    return render(request, "gateways/payment_methods.html", {
        "methods": selectors.payment_methods_for(customer), "form": form, "gateways": gateways,
        "autopay": selectors.card_auto_top_up_settings_for(customer),
    })


@require_POST
@customer_view(Area.BILLING)
def method_make_default(request, method_id: int):
    method = selectors.payment_method_get(customer=acting_customer(request), method_id=method_id)
    services.method_set_default(method=method, actor=request.user)
    messages.success(request, _("%(method)s is now your default payment method.") % {"method": method})
    return redirect("gateways:methods")


@require_POST
@customer_view(Area.BILLING)
def method_remove(request, method_id: int):
    method = selectors.payment_method_get(customer=acting_customer(request), method_id=method_id)
    label = str(method)
    services.method_remove(method=method, actor=request.user)
    messages.success(request, _("%(method)s was removed.") % {"method": label})
    return redirect("gateways:methods")


@customer_view(Area.BILLING)
def autopay(request):
    customer = acting_customer(request)
    current = selectors.card_auto_top_up_settings_for(customer)
    initial = {"enabled": current.enabled, "method": current.method,
               "monthly_limit": quantize(current.monthly_limit, customer.currency)} if current else {
        "monthly_limit": 0, "method": selectors.payment_methods_for(customer).filter(is_default=True).first()}
    form = AutopayForm(request.POST or None, customer=customer, initial=initial)
    if request.method == "POST" and form.is_valid():
        services.card_auto_top_up_configure(customer=customer, enabled=form.cleaned_data["enabled"], method=form.cleaned_data["method"],
                                   monthly_limit=form.cleaned_data["monthly_limit"], actor=request.user)
        messages.success(request, _("Auto-payment settings saved."))
        return redirect("gateways:autopay")
    return render(request, "gateways/autopay.html", {
        "form": form, "settings_row": current, "has_methods": selectors.payment_methods_for(customer).exists(),
        "month_used": selectors.card_auto_top_up_month_used(customer=customer, today=provider_today()),
        "charges": selectors.card_auto_top_up_charges_for(customer)[:12], "currency": customer.currency,
        "threshold": customer.low_balance_threshold,
    })


def pay_link(request, invoice_id: int, token: str):
    """Pay one invoice without logging in (Customer.pay_without_login). Shows that invoice only."""
    try:
        customer_id = services.pay_link_check(invoice_id=invoice_id, token=token)
    except signing.SignatureExpired:
        return render(request, "gateways/pay_link_closed.html", {"reason": "expired"}, status=410)
    except signing.BadSignature:
        raise Http404
    invoice = selectors.pay_link_invoice(invoice_id=invoice_id, customer_id=customer_id)
    customer = invoice.customer
    attempt = selectors.pay_link_attempt(invoice=invoice, reference=request.GET["attempt"]) if request.GET.get("attempt") else None
    if not customer.pay_without_login:
        return render(request, "gateways/pay_link_closed.html", {"reason": "disabled"}, status=410)
    if not invoice.is_open:
        return render(request, "gateways/pay_link_closed.html", {"reason": "paid", "invoice": invoice, "attempt": attempt},
                      status=410 if attempt is None else 200)
    gateways = selectors.gateways_available(customer=customer, currency=invoice.currency)
    form = PayInvoiceForm(request.POST or None, gateways=[g for g in gateways if g.redirects])
    if request.method == "POST" and form.is_valid():
        response = _start(request, customer=customer, invoice=invoice, form=form, via_pay_link=True, pay_link_path=request.path)
        if response is not None:
            return response
    context = _pay_context(customer=customer, invoice=invoice, form=form, show_balance=False)
    context["attempt"] = attempt
    return render(request, "gateways/pay_link.html", context)


@csrf_exempt
def webhook(request, gateway_code: str):
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    status, result = services.webhook_receive(gateway_code=gateway_code, body=request.body, headers=request.headers,
                                              remote_ip=client_ip(request))
    return HttpResponse(result, status=status, content_type="text/plain")


# --- the sandbox provider's hosted page (stands in for an external site) ----------------------------

def sandbox_checkout(request, checkout_id: str):
    if not settings.PAYMENT_SANDBOX_ENABLED:
        raise Http404
    checkout = get_object_or_404(SandboxCheckout, pk=checkout_id)
    form = SandboxCardForm(request.POST or None)
    declined = False
    if request.method == "POST" and checkout.status == SandboxCheckout.Status.OPEN and form.is_valid():
        month, year = form.expiry_parts()
        try:
            outcome = sandbox_provider.checkout_pay(
                checkout_id=checkout.pk, number=form.cleaned_data["number"], exp_month=month, exp_year=year,
                cvc=form.cleaned_data["cvc"], save_card=form.cleaned_data["save_card"],
            )
        except sandbox_provider.SandboxCardError as exc:
            form.add_error(None, _(str(exc)))
        else:
            if outcome == "declined":
                declined = True
                form.add_error(None, _(sandbox_provider.DECLINE_MESSAGE))
            else:
                return redirect(checkout.success_url)
    return render(request, "gateways/sandbox/checkout.html", {
        "checkout": checkout, "form": form, "declined": declined, "test_cards": sandbox_provider.TEST_CARDS,
        "merchant": settings.PORTAL_NAME,
    })


@require_POST
def sandbox_checkout_cancel(request, checkout_id: str):
    if not settings.PAYMENT_SANDBOX_ENABLED:
        raise Http404
    checkout = get_object_or_404(SandboxCheckout, pk=checkout_id)
    checkout = sandbox_provider.checkout_cancel(checkout_id=checkout.pk)
    return redirect(checkout.cancel_url)


def invoice_payment_panel(request, invoice) -> str:
    """The "pay by another method" block billing shows on an open invoice (billing.hooks panel)."""
    customer = invoice.customer
    gateways = selectors.gateways_available(customer=customer, currency=invoice.currency)
    if not gateways:
        return ""
    in_flight = selectors.attempt_in_flight(invoice)
    return render_to_string("gateways/partials/invoice_panel.html", {
        "in_flight": services.in_flight_message(in_flight) if in_flight else "",
        "invoice": invoice,
        "gateways": [g for g in gateways if g.redirects],
        "has_bank_transfer": any(not g.redirects for g in gateways),
        "can_save": any(g.supports_saved_methods for g in gateways),
        "pay_link": services.pay_link_url(invoice=invoice),
    }, request=request)
