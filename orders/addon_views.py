"""Customer pages for a running service's add-ons: the list with what each costs, the quote for a
new number of steps (charge or credit, by the plan-change proration), and the change itself.

Access as for a plan change: the page needs Area.SERVICES, the change also Area.BILLING (it spends
or credits money), so a Technical user sees the add-ons and a Finance user has no services pages.
"""
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods

from accounts.roles import Area, acting_customer, customer_view
from billing.money import quantize

from . import selectors
from .forms import AddonChangeForm
from .services import addons as addon_services
from .views import _can_pay, _invoice_url, _require_pay


def _tax_percent(customer):
    from billing.services.tax import TaxNotConfigured, tax_for

    try:
        return tax_for(customer).percent
    except TaxNotConfigured:
        return None


@customer_view(Area.SERVICES)
@require_http_methods(["GET", "POST"])
def order_addons(request: HttpRequest, order_id: int) -> HttpResponse:
    """GET lists the plan's add-ons; `?addon=<id>&quantity=<n>` shows what that change costs or
    credits now; POST (with the amount shown) makes it."""
    customer = acting_customer(request)
    order = selectors.order_get(customer=customer, order_id=order_id)
    rows = selectors.order_addon_rows(order=order)
    selected = quote = error = None
    form = None
    raw_addon = request.POST.get("addon") if request.method == "POST" else request.GET.get("addon")
    if raw_addon:
        row = next((row for row in rows if str(row.addon.pk) == raw_addon), None)
        if row is None:
            raise Http404  # not an add-on of this service's plan
        selected = row
        form = AddonChangeForm(request.POST if request.method == "POST" else request.GET, addon=row.addon, current=row.quantity)
        if form.is_valid():
            try:
                quote = addon_services.addon_change_quote(order=order, addon=row.addon, quantity=form.cleaned_data["quantity"])
            except ValidationError as exc:
                form.add_error(None, exc)
            if quote is not None and request.method == "POST":
                _require_pay(request)
                try:
                    result = addon_services.order_addon_change(
                        order=order, addon=row.addon, quantity=form.cleaned_data["quantity"], actor=request.user,
                        expected_amount=form.cleaned_data["expected_amount"])
                except ValidationError as exc:
                    form.add_error(None, exc)
                    quote = None
                else:
                    if result.invoice is not None and not result.paid:
                        messages.info(request, _("Pay this invoice to add the add-on."))
                        return redirect(_invoice_url(result.invoice.pk))
                    messages.success(request, addon_services.addon_change_summary(result))
                    if result.missing_addresses:
                        messages.warning(request, _("Our staff will assign the remaining IPv4 addresses shortly."))
                    return redirect("orders:order_detail", order_id=order.pk)
    elif request.method == "POST":
        error = _("Choose an add-on.")
    tax_percent = _tax_percent(customer)
    credit_tax = None
    if quote is not None and quote.credit and tax_percent is not None:
        credit_tax = quantize(quote.credit * tax_percent / 100, order.currency)
    return render(request, "orders/order_addons.html", {
        "order": order, "rows": rows, "selected": selected, "form": form, "quote": quote, "error": error,
        "can_pay": _can_pay(request), "changeable": order.status == order.Status.ACTIVE,
        "tax_percent": tax_percent, "credit_tax": credit_tax,
        "server_notice": _server_notice(order, selected, quote),
    })


def _server_notice(order, selected, quote) -> str:
    """What the customer is told before confirming: a restart for more CPU or RAM on a VM."""
    if quote is None or selected is None or selected.addon.kind not in ("cpu", "ram"):
        return ""
    from .provisioning import _has_machine, module_for

    module = module_for(order)
    if module.runs_in_jobs and _has_machine(order):
        return _("Your server restarts once to apply the new CPU and memory.")
    return ""

