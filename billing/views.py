from decimal import Decimal, InvalidOperation

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts.roles import Area, acting_customer, customer_view
from accounts.selectors import payment_blockers

from . import hooks, selectors, services
from .forms import CurrencyChangeForm, TopUpForm
from .models import Invoice
from .money import format_money, quantize
from .rates import RateError, RateTable

PAGE_SIZE = 20


def _page(request, items):
    return Paginator(items, PAGE_SIZE).get_page(request.GET.get("page"))


def _balance_context(request, customer, form=None):
    currencies = selectors.enabled_currencies()
    balance = selectors.balance_of(customer)
    table = RateTable(currencies)
    return {
        "customer": customer,
        "balance": balance,
        "equivalents": selectors.equivalents(balance, customer.currency, currencies),
        "stale_codes": [c.code for c in currencies if table.stale(c.code)],
        "form": form or TopUpForm(currencies=currencies, initial={"currency": customer.currency}),
        "movements": _page(request, selectors.account_movements(customer)),
    }


@customer_view(Area.BILLING)
@require_GET
def balance(request):
    return render(request, "billing/balance.html", _balance_context(request, acting_customer(request)))


@customer_view(Area.BILLING)
@require_GET
def topup_preview(request):
    """htmx partial: the entered amount in every other enabled currency at the current rate."""
    currencies = selectors.enabled_currencies()
    form = TopUpForm(request.GET, currencies=currencies)
    rows, error = [], ""
    if form.is_valid():
        rows = selectors.equivalents(form.cleaned_data["amount"], form.cleaned_data["currency"], currencies)
    elif request.GET.get("amount", "").strip():
        error = " ".join(msg for errors in form.errors.values() for msg in errors)
    return render(request, "billing/_topup_preview.html", {"rows": rows, "error": error})


@customer_view(Area.BILLING)
@require_POST
def topup(request):
    customer = acting_customer(request)
    form = TopUpForm(request.POST, currencies=selectors.enabled_currencies())
    if not form.is_valid():
        return render(request, "billing/balance.html", _balance_context(request, customer, form), status=400)
    invoice = services.topup_invoice_create(customer=customer, amount=form.cleaned_data["amount"], currency=form.cleaned_data["currency"])
    messages.success(request, _("Invoice %(number)s for your top-up is ready to pay.") % {"number": invoice.number})
    return redirect("billing:invoice_detail", invoice_id=invoice.pk)


@customer_view(Area.BILLING)
@require_http_methods(["GET", "POST"])
def currency_change(request):
    customer = acting_customer(request)
    currencies = selectors.enabled_currencies()
    form = CurrencyChangeForm(request.POST or None, currencies=currencies, current=customer.currency)
    if request.method == "POST" and form.is_valid():
        currency = form.cleaned_data["currency"]
        try:
            if request.POST.get("confirm") == "1":
                try:
                    expected = Decimal(request.POST.get("rate", ""))
                except InvalidOperation:
                    raise ValidationError(_("The exchange rate has changed. Review the new amount and confirm again."))
                services.account_currency_change(customer=customer, currency=currency, expected_rate=expected, actor=request.user)
                messages.success(request, _("Your account currency is now %(code)s.") % {"code": currency})
                return redirect("billing:balance")
            preview = services.account_currency_change_preview(customer=customer, currency=currency)
        except ValidationError as exc:
            form.add_error(None, exc.messages[0])
        else:
            return render(request, "billing/currency_confirm.html", {"preview": preview, "form": form})
    return render(request, "billing/currency_change.html", {"form": form, "customer": customer})


@customer_view(Area.BILLING)
@require_GET
def invoice_list(request):
    customer = acting_customer(request)
    status = request.GET.get("status", "all")
    if status not in selectors.INVOICE_FILTERS:
        status = "all"
    sort = request.GET.get("sort", "-date")
    search = request.GET.get("q", "")[:100]
    page = _page(request, selectors.invoice_list(customer=customer, status=status, sort=sort, search=search))
    return render(request, "billing/invoice_list.html", {"page": page, "status": status, "sort": sort, "q": search})


@customer_view(Area.BILLING)
@require_GET
def invoice_detail(request, invoice_id):
    customer = acting_customer(request)
    invoice = selectors.invoice_get(customer=customer, invoice_id=invoice_id)
    balance = selectors.balance_of(customer)
    context = {"invoice": invoice, "balance": balance, "customer": customer,
               "payments": invoice.payments.all(), "credit_notes": invoice.credit_notes.all()}
    if invoice.is_open:
        context["blockers"] = payment_blockers(customer)
        context["payment_panels"] = hooks.invoice_payment_panels(request, invoice)
        if invoice.kind != Invoice.Kind.ADVANCE:
            available = _balance_in(balance, customer.currency, invoice.currency)
            context["available"] = available
            context["covers"] = available is not None and available >= invoice.amount_due
            if available is not None and 0 < available < invoice.amount_due:
                context["difference"] = invoice.amount_due - available
    return render(request, "billing/invoice_detail.html", context)


def _balance_in(balance, account_currency, currency):
    if account_currency == currency:
        return balance
    try:
        return quantize(balance * RateTable().quote(account_currency, currency).rate, currency)
    except RateError:
        return None


def _invoice_for_post(request, invoice_id):
    customer = acting_customer(request)
    return customer, selectors.invoice_get(customer=customer, invoice_id=invoice_id)


def _gate(request, customer, invoice) -> bool:
    try:
        services.payment_gate_check(customer)
    except services.PaymentBlocked:
        messages.error(request, _("Complete your profile before paying."))
        return False
    return True


@customer_view(Area.BILLING)
@require_POST
def invoice_pay_balance(request, invoice_id):
    customer, invoice = _invoice_for_post(request, invoice_id)
    if _gate(request, customer, invoice):
        if services.invoice_pay_from_balance(invoice=invoice, actor=request.user):
            messages.success(request, _("Invoice %(number)s is paid from your balance.") % {"number": invoice.number})
        else:
            messages.error(request, _("Your balance does not cover this invoice."))
    return redirect("billing:invoice_detail", invoice_id=invoice.pk)


@customer_view(Area.BILLING)
@require_POST
def invoice_apply_balance(request, invoice_id):
    customer, invoice = _invoice_for_post(request, invoice_id)
    if _gate(request, customer, invoice):
        try:
            applied = services.invoice_apply_balance(invoice=invoice, actor=request.user)
        except ValidationError as exc:
            messages.error(request, exc.messages[0])
        else:
            messages.success(request, _("%(amount)s from your balance was applied to invoice %(number)s.")
                             % {"amount": format_money(applied, invoice.currency), "number": invoice.number})
    return redirect("billing:invoice_detail", invoice_id=invoice.pk)


@customer_view(Area.BILLING)
@require_POST
def invoice_topup_difference(request, invoice_id):
    customer, invoice = _invoice_for_post(request, invoice_id)
    if not invoice.is_open or invoice.kind == Invoice.Kind.ADVANCE:
        raise Http404
    available = _balance_in(selectors.balance_of(customer), customer.currency, invoice.currency) or Decimal(0)
    difference = invoice.amount_due - max(available, Decimal(0))
    if difference <= 0:
        messages.info(request, _("Your balance already covers this invoice."))
        return redirect("billing:invoice_detail", invoice_id=invoice.pk)
    advance = services.topup_invoice_create(customer=customer, amount=difference, currency=invoice.currency)
    messages.success(request, _("Pay invoice %(advance)s; invoice %(number)s is then paid from your balance automatically.")
                     % {"advance": advance.number, "number": invoice.number})
    return redirect("billing:invoice_detail", invoice_id=advance.pk)


@customer_view(Area.BILLING)
@require_POST
def invoice_cancel(request, invoice_id):
    customer, invoice = _invoice_for_post(request, invoice_id)
    if invoice.kind != Invoice.Kind.ADVANCE:
        raise Http404  # service invoices are cancelled with their order
    try:
        services.invoice_cancel(invoice=invoice, reason=_("Cancelled by the customer"), actor=request.user)
    except ValidationError as exc:
        messages.error(request, exc.messages[0])
    else:
        messages.success(request, _("Invoice %(number)s is cancelled.") % {"number": invoice.number})
    return redirect("billing:invoices")


@customer_view(Area.BILLING)
@require_GET
def invoice_pdf(request, invoice_id):
    from weasyprint import HTML  # heavy import, only for PDFs

    invoice = selectors.invoice_get(customer=acting_customer(request), invoice_id=invoice_id)
    html = render_to_string("billing/invoice_pdf.html", {"invoice": invoice, "seller": settings.BILLING_SELLER_DETAILS,
                                                         "bank": settings.BILLING_BANK_DETAILS, "PORTAL_NAME": settings.PORTAL_NAME}, request=request)
    pdf = HTML(string=html, base_url=request.build_absolute_uri("/")).write_pdf()
    response = HttpResponse(pdf, content_type="application/pdf")
    response["Content-Disposition"] = f'inline; filename="invoice-{invoice.number}.pdf"'
    return response


@customer_view(Area.BILLING)
@require_GET
def payment_list(request):
    page = _page(request, selectors.payments_for(acting_customer(request)))
    return render(request, "billing/payment_list.html", {"page": page})


@customer_view(Area.BILLING)
@require_GET
def payment_detail(request, payment_id):
    payment = selectors.payment_get(customer=acting_customer(request), payment_id=payment_id)
    return render(request, "billing/payment_detail.html", {"payment": payment})


@customer_view(Area.BILLING)
@require_GET
def expense_list(request):
    page = _page(request, selectors.expenses_for(acting_customer(request)))
    return render(request, "billing/expense_list.html", {"page": page})
