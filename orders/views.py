"""Customer pages for services: catalogue and ordering, the orders table, order detail and actions.

Access rule: every page needs Area.SERVICES. Actions that spend money now or later (order, renew,
upgrade, add-ons, the auto-renewal toggle) also need Area.BILLING, because paying is a billing act: a
Technical trusted user sees services, their details and history, and may cancel them, but cannot
spend the balance.
"""
import uuid

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.translation import gettext as _
from django.utils.translation import ngettext, to_locale
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts.content import localized_value
from accounts.roles import Area, acting_customer, customer_view, role_allows
from billing.money import format_money, quantize
from billing.selectors import tax_for
from billing.tax import invoice_totals
from core.jinja import memo_dates
from core.links import link_maker

from . import pricing, provisioning, selectors
from .forms import AddonChangeForm, AutoRenewForm, BatchRenewForm, CancelForm, ChangePlanForm, OrderForm, RenewForm
from .models import Order
from .services import addons as addon_services
from .services import cancelling, placing, plan_change, renewing
from .templatetags.order_tags import order_status_badge_of


def _can_pay(request: HttpRequest) -> bool:
    return role_allows(request.user, Area.BILLING)


def _require_pay(request: HttpRequest) -> None:
    if not _can_pay(request):
        raise PermissionDenied(_("Your role cannot spend the account balance. Ask the account owner or a finance user."))


def _invoice_url(invoice_id: int) -> str:
    return reverse("billing:invoice_detail", args=[invoice_id])


def _errors(error: ValidationError) -> str:
    return " ".join(error.messages)


# --- orders table ----------------------------------------------------------------------------------

@customer_view(Area.SERVICES)
@require_GET
def order_list(request: HttpRequest) -> HttpResponse:
    customer = acting_customer(request)
    sort = request.GET.get("sort", "created")
    params = selectors.OrderListParams(
        query=request.GET.get("q", "")[:100], status=request.GET.get("status", ""),
        sort=sort.lstrip("-") if sort.lstrip("-") in selectors.SORTS else "created",
        descending=sort.startswith("-") or sort not in selectors.SORTS,
    )
    counts = selectors.status_counts(customer=customer)
    if params.query.strip().lstrip("#"):  # a search: the ORM's rows (and its COUNT)
        paginator = Paginator(selectors.order_table_values(customer=customer, params=params), settings.ORDERS_PAGE_SIZE)
    else:  # without a search the status counts give the total (no COUNT query), and the rows' query is compiled once
        paginator = Paginator(selectors.order_table_rows(customer=customer, params=params), settings.ORDERS_PAGE_SIZE)
        paginator.count = counts.get(params.status, 0) if params.status in Order.Status.values else sum(counts.values())
    page = paginator.get_page(request.GET.get("page"))
    rows = _table_rows(list(page.object_list))
    return render(request, "orders/order_list.html", {
        "page": page, "rows": rows, "params": params, "sort": sort, "can_pay": _can_pay(request),
        "status_filters": [(value, label, counts[value]) for value, label in Order.Status.choices if counts.get(value)],
    })


RENEWABLE_STATUSES = frozenset({Order.Status.ACTIVE, Order.Status.EXPIRED, Order.Status.SUSPENDED})


def _table_rows(rows: list[dict]) -> list[dict]:
    """The orders table's rows (dicts of selectors.TABLE_ROW_FIELDS) with what each prints: days left, renewable,
    "N mo" label, add-ons' labels, expiry date, plan name, status badge, cost and links. Computed here, not per
    row in the template; the language, time zone and URL shapes read once a page, the "N mo" labels once per
    period length."""
    addon_labels = selectors.table_addon_labels([row["pk"] for row in rows if row["has_addons"]])
    language, zone = translation.get_language(), timezone.get_current_timezone()
    today, locale = timezone.localtime(timezone.now(), zone).date(), to_locale(language or "en")
    short_dates = memo_dates("SHORT_DATE_FORMAT")
    detail, renew, change_plan, pay = (link_maker(name) for name in (
        "orders:order_detail", "orders:order_renew", "orders:order_change_plan", "billing:invoice_detail"))
    period_labels: dict[int, str] = {}
    for row in rows:
        pk, months, expires_at, status = row["pk"], row["period_months"], row["expires_at"], row["status"]
        period_label = period_labels.get(months)
        if period_label is None:
            period_label = period_labels[months] = _period_label(months)
        row.update(
            days=selectors.days_left(expires_at, status, today, zone), renewable=status in RENEWABLE_STATUSES,
            period_label=period_label, addon_labels=addon_labels.get(pk, ()),
            expires=short_dates[expires_at] if expires_at else None,
            plan_name=localized_value(row.get, "plan__name", language),
            badge=order_status_badge_of(status, row["provisioning"], row["cancel_at_period_end"], language),
            cost=format_money(row["period_cost"], row["currency"], locale),
            detail_url=detail(pk), renew_url=renew(pk), change_plan_url=change_plan(pk),
            pay_url=pay(row["invoice_id"]) if row["invoice_id"] else None)
    return rows


def _period_label(months: int) -> str:
    """The table's "N mo" after a row's cost."""
    return ngettext("%(n)s mo", "%(n)s mo", months) % {"n": months}


@customer_view(Area.SERVICES)
@require_POST
def order_batch_renew(request: HttpRequest) -> HttpResponse:
    _require_pay(request)
    customer = acting_customer(request)
    form = BatchRenewForm(request.POST)
    if not form.is_valid():
        messages.error(request, " ".join(e for errors in form.errors.values() for e in errors))
        return redirect("orders:order_list")
    paid, unpaid, refused = [], [], []
    for order in selectors.renewable_orders(customer=customer, ids=form.order_ids):
        try:
            result = renewing.order_renew(order=order, periods=form.cleaned_data["periods"], actor=request.user)
        except ValidationError as error:
            refused.append(f"#{order.pk}: {_errors(error)}")
            continue
        (paid if result.paid else unpaid).append(order.pk)
    skipped = len(form.order_ids) - len(paid) - len(unpaid) - len(refused)
    if paid:
        messages.success(request, _("Renewed from the balance: %(ids)s.") % {"ids": ", ".join(f"#{i}" for i in paid)})
    if unpaid:
        messages.warning(request, _("Your balance did not cover %(ids)s: their renewal invoices are waiting for payment.") % {
            "ids": ", ".join(f"#{i}" for i in unpaid)})
        return redirect(reverse("billing:invoices") + "?status=unpaid")
    for message in refused:
        messages.error(request, message)
    if skipped:
        messages.error(request, _("%(n)s selected service(s) cannot be renewed.") % {"n": skipped})
    return redirect("orders:order_list")


# --- catalogue and placing an order ----------------------------------------------------------------

@customer_view(Area.SERVICES)
@require_GET
def catalogue(request: HttpRequest) -> HttpResponse:
    customer = acting_customer(request)
    product_types = selectors.catalogue()
    cards = []
    for product_type in product_types:
        plans = []
        for plan in product_type.plans.all():
            shortest, monthly = pricing.shortest_period(plan), None
            if shortest:
                try:
                    monthly = pricing.plan_price(plan=plan, period_months=shortest, currency=customer.site_currency)
                except ValidationError:
                    pass  # no price in the site currency and no rate to convert: the card shows none
            plans.append((plan, monthly, shortest))
        cards.append((product_type, plans))
    return render(request, "orders/catalogue.html", {"cards": cards, "can_pay": _can_pay(request)})


def _price_context(customer, quote) -> dict:
    """Tax, total and its site-currency equivalent of an order quote (review page and live summary)."""
    tax = tax_for(customer)
    totals = invoice_totals(subtotal=quote.subtotal, tax=tax, currency=quote.currency)
    tax_amount, total = totals.tax_amount, totals.total
    site_total = None
    if customer.site_currency != quote.currency:
        try:
            amount, _rate = pricing.convert(total, quote.currency, customer.site_currency)
            site_total = pricing.Price(amount=quantize(amount, customer.site_currency), currency=customer.site_currency)
        except ValidationError:
            site_total = None
    return {"quote": quote, "tax": tax, "tax_amount": tax_amount, "total": total, "site_total": site_total}


def _review_context(request, customer, form: OrderForm) -> dict:
    from billing.selectors import balance_of

    quote = placing.order_quote(customer=customer, plan=form.plan, period_months=form.cleaned_data["period_months"],
                                 promo_code=form.cleaned_data["promo_code"], addons=form.addon_quantities())
    context = _price_context(customer, quote)
    balance = balance_of(customer)
    total = context["total"]
    return {**context, "form": form, "plan": form.plan, "balance": balance, "covers": balance >= total,
            "shortfall": max(total - balance, 0), "options": form.options()}


@customer_view(Area.SERVICES)
@require_http_methods(["GET", "POST"])
def order_new(request: HttpRequest, plan_id: int) -> HttpResponse:
    """Step 1: period and options (GET/POST); a valid POST shows the review page (step 2)."""
    customer = acting_customer(request)
    plan = selectors.plan_for_order(plan_id=plan_id)
    if request.method == "POST":
        _require_pay(request)
        form = OrderForm(request.POST, plan=plan)
        if form.is_valid():
            try:
                return render(request, "orders/order_review.html", _review_context(request, customer, form))
            except ValidationError as error:
                form.add_service_error(error)
    else:
        form = OrderForm(plan=plan, initial={"request_key": uuid.uuid4().hex,
                                             "period_months": pricing.shortest_period(plan) or 1})
    return render(request, "orders/order_new.html", {"form": form, "plan": plan, "can_pay": _can_pay(request)})


@customer_view(Area.SERVICES)
@require_GET
def order_summary(request: HttpRequest, plan_id: int) -> HttpResponse:
    """The order form's price summary (htmx, on every change of the period, an add-on or the promo
    code): what is chosen validly is priced; a promo code that cannot be used is named, not applied."""
    customer = acting_customer(request)
    plan = selectors.plan_for_order(plan_id=plan_id)
    form = OrderForm(request.GET, plan=plan)
    form.is_valid()  # hostname and the rest are not sent: only the priced fields are read
    data = form.cleaned_data
    period = data.get("period_months") or pricing.shortest_period(plan) or 1
    quantities = {addon.pk: data[name] for addon in form.addons if data.get(name := f"addon_{addon.pk}")}
    promo_error = ""
    code = data.get("promo_code", "") if "promo_code" not in form.errors else ""
    if "promo_code" in form.errors:
        promo_error = " ".join(form.errors["promo_code"])
    try:
        try:
            quote = placing.order_quote(customer=customer, plan=plan, period_months=period, promo_code=code, addons=quantities)
        except ValidationError as error:
            if not code:
                raise
            promo_error = _errors(error)
            quote = placing.order_quote(customer=customer, plan=plan, period_months=period, addons=quantities)
        context = _price_context(customer, quote)
    except ValidationError as error:
        return render(request, "orders/_order_summary_error.html", {"error": _errors(error)})
    return render(request, "orders/_order_summary.html", {**context, "promo_error": promo_error})


@customer_view(Area.SERVICES)
@require_POST
def order_confirm(request: HttpRequest, plan_id: int) -> HttpResponse:
    """Step 3: place the order; pay from the balance when it covers the total, else go to the invoice."""
    _require_pay(request)
    customer = acting_customer(request)
    plan = selectors.plan_for_order(plan_id=plan_id)
    form = OrderForm(request.POST, plan=plan)
    if not form.is_valid():
        return render(request, "orders/order_new.html", {"form": form, "plan": plan, "can_pay": True})
    try:
        placed = placing.order_place(
            customer=customer, actor=request.user, plan=plan, period_months=form.cleaned_data["period_months"],
            options=form.options(), idempotency_key=f"{customer.pk}:{form.cleaned_data['request_key']}",
            promo_code=form.cleaned_data["promo_code"], addons=form.addon_quantities(),
        )
    except ValidationError as error:
        form.add_service_error(error)
        return render(request, "orders/order_new.html", {"form": form, "plan": plan, "can_pay": True})
    if placed.paid:
        if placed.order.status == Order.Status.ACTIVE:
            messages.success(request, _("Order #%(id)s is paid and your server is ready.") % {"id": placed.order.pk})
        elif placed.order.provisioning == Order.Provisioning.IN_PROGRESS:
            messages.success(request, _("Order #%(id)s is paid; your server is being created.") % {"id": placed.order.pk})
        else:
            messages.success(request, _("Order #%(id)s is paid; our staff are setting up your server.") % {"id": placed.order.pk})
        return redirect("orders:order_detail", order_id=placed.order.pk)
    messages.info(request, _("Order #%(id)s is placed. Pay its invoice to activate it: top up the difference, or pay the rest or the whole invoice by a payment method.") % {"id": placed.order.pk})
    return redirect(_invoice_url(placed.invoice.pk))


# --- one order -------------------------------------------------------------------------------------

def _detail_context(request, order: Order) -> dict:
    from . import addons
    from .provisioning.ip_pool import extra_addresses

    held = addons.held_items(order)
    return {
        "addons": held,
        "addons_offered": order.plan_offers_addons if hasattr(order, "plan_offers_addons") else addons.plan_offers_addons(order.plan),
        "extra_ips": extra_addresses(order) if any(item.addon.kind == "ipv4" for item in held) else [],
        "order": order, "days_left": selectors.days_remaining(order), "events": selectors.page_events(order=order),
        "invoices": selectors.page_invoices(order=order), "can_pay": _can_pay(request),
        "auto_renew_effective": cancelling.effective_auto_renew(order),
        "auto_renew_form": AutoRenewForm(initial={"auto_renew": {None: "default", True: "on", False: "off"}[order.auto_renew]}),
        "renewable": order.status in renewing.RENEWABLE,
        "changeable": order.status == Order.Status.ACTIVE,
        "ended": order.status in (Order.Status.CANCELLED, Order.Status.TERMINATED),
        "setup": selectors.order_setup(order=order),
    }


@customer_view(Area.SERVICES)
@require_GET
def order_detail(request: HttpRequest, order_id: int) -> HttpResponse:
    order = selectors.order_page(customer=acting_customer(request), order_id=order_id)
    return render(request, "orders/order_detail.html", _detail_context(request, order))


@customer_view(Area.SERVICES)
@require_GET
def order_setup_progress(request: HttpRequest, order_id: int) -> HttpResponse:
    """htmx poll while the server is being set up; once that is over the whole page reloads."""
    order = selectors.order_get(customer=acting_customer(request), order_id=order_id)
    setup = selectors.order_setup(order=order)
    if not request.htmx:
        return redirect("orders:order_detail", order_id=order.pk)
    response = render(request, "orders/_setup_progress.html", {"order": order, "setup": setup})
    if not setup["setting_up"] or setup["failed"]:
        response["HX-Refresh"] = "true"
    return response


@customer_view(Area.SERVICES)
@require_POST
def order_root_password(request: HttpRequest, order_id: int) -> HttpResponse:
    """Show the new server's root password once (then it is gone from the portal)."""
    from .provisioning.jobs import vm_password_take

    order = selectors.order_get(customer=acting_customer(request), order_id=order_id)
    password = vm_password_take(order=order, actor=request.user)
    if not password:
        messages.error(request, _("The root password was already shown; reset it from the server or reinstall."))
        return redirect("orders:order_detail", order_id=order.pk)
    response = render(request, "orders/order_root_password.html", {"order": order, "password": password})
    response["Cache-Control"] = "no-store"
    return response


@customer_view(Area.SERVICES)
@require_POST
def order_auto_renew(request: HttpRequest, order_id: int) -> HttpResponse:
    """Toggle (htmx partial or full redirect). Choosing whether money is spent later is a billing act too."""
    _require_pay(request)
    order = selectors.order_get(customer=acting_customer(request), order_id=order_id)
    form = AutoRenewForm(request.POST)
    if form.is_valid():
        try:
            order = cancelling.order_set_auto_renew(order=order, auto_renew=form.value(), actor=request.user)
        except ValidationError as error:
            messages.error(request, _errors(error))
    if request.htmx:
        order = selectors.order_get(customer=acting_customer(request), order_id=order_id)
        return render(request, "orders/_auto_renew.html", _detail_context(request, order) | {"saved": form.is_valid()})
    return redirect("orders:order_detail", order_id=order.pk)


@customer_view(Area.SERVICES)
@require_http_methods(["GET", "POST"])
def order_renew(request: HttpRequest, order_id: int) -> HttpResponse:
    customer = acting_customer(request)
    order = selectors.order_get(customer=customer, order_id=order_id)
    form = RenewForm(request.POST or None, initial={"period": order.current_period + 1})
    if request.method == "POST":
        _require_pay(request)
        if form.is_valid():
            try:
                result = renewing.order_renew(order=order, periods=form.cleaned_data["periods"], actor=request.user,
                                              expected_period=form.cleaned_data["period"])
            except ValidationError as error:
                form.add_error(None, error)
            else:
                if result.paid:
                    messages.success(request, _("Order #%(id)s is renewed.") % {"id": order.pk})
                    return redirect("orders:order_detail", order_id=order.pk)
                messages.info(request, _("Your balance does not cover the renewal. Pay this invoice to renew the service."))
                return redirect(_invoice_url(result.invoice.pk))
    price = pricing.renewal_price(order) if order.status in renewing.RENEWABLE else None
    options = [(n, quantize(price * n, order.currency)) for n in (1, 2, 3, 6, 12)] if price is not None else []
    from billing.selectors import balance_of

    return render(request, "orders/order_renew.html", {
        "order": order, "form": form, "price": price, "options": options, "can_pay": _can_pay(request),
        "balance": balance_of(customer), "balance_currency": customer.currency,  # the account's, not the order's
        "starts_today": renewing.renewal_starts_today(order),
    })


@customer_view(Area.SERVICES)
@require_http_methods(["GET", "POST"])
def order_cancel(request: HttpRequest, order_id: int) -> HttpResponse:
    order = selectors.order_get(customer=acting_customer(request), order_id=order_id)
    form = CancelForm(request.POST or None)
    if request.method == "POST" and order.status == Order.Status.PENDING:
        form = CancelForm({"when": "now", "confirm": request.POST.get("confirm")})
    if request.method == "POST" and form.is_valid():
        try:
            cancelling.order_cancel(order=order, actor=request.user, immediately=form.cleaned_data["when"] == "now")
        except ValidationError as error:
            form.add_error(None, error)
        else:
            messages.success(request, _("Order #%(id)s is cancelled.") % {"id": order.pk} if form.cleaned_data["when"] == "now"
                             else _("Order #%(id)s will be cancelled at the end of the paid period.") % {"id": order.pk})
            return redirect("orders:order_detail", order_id=order.pk)
    return render(request, "orders/order_cancel.html", {"order": order, "form": form})


@customer_view(Area.SERVICES)
@require_POST
def order_cancel_undo(request: HttpRequest, order_id: int) -> HttpResponse:
    order = selectors.order_get(customer=acting_customer(request), order_id=order_id)
    try:
        cancelling.order_cancel_undo(order=order, actor=request.user)
        messages.success(request, _("The cancellation is withdrawn; the service continues."))
    except ValidationError as error:
        messages.error(request, _errors(error))
    return redirect("orders:order_detail", order_id=order.pk)


@customer_view(Area.SERVICES)
@require_http_methods(["GET", "POST"])
def order_change_plan(request: HttpRequest, order_id: int) -> HttpResponse:
    """GET lists plans with what switching costs now; choosing one shows the amount to confirm."""
    order = selectors.order_get(customer=acting_customer(request), order_id=order_id)
    plans = plan_change.plan_change_candidates(order)
    quotes, error = [], ""
    if order.status == Order.Status.ACTIVE:
        for plan in plans:
            try:
                quotes.append(plan_change.plan_change_quote(order=order, plan=plan))
            except ValidationError as exc:
                error = error or _errors(exc)
    selected = None
    form = ChangePlanForm(request.POST or request.GET or None, plans=plans)
    if form.is_bound and form.is_valid():
        selected = next((q for q in quotes if q.plan.pk == form.cleaned_data["plan"].pk), None)
        if request.method == "POST" and selected is not None:
            _require_pay(request)
            try:
                result = plan_change.order_change_plan(order=order, plan=selected.plan, actor=request.user,
                                                       expected_amount=form.cleaned_data["expected_amount"])
            except ValidationError as exc:
                form.add_error(None, exc)
            else:
                if result.scheduled:
                    messages.success(request, _("The switch to %(plan)s is scheduled for the next renewal.") % {"plan": selected.plan.name})
                elif result.paid:
                    messages.success(request, _("Your service now runs on %(plan)s.") % {"plan": selected.plan.name})
                else:
                    messages.info(request, _("Pay this invoice to complete the upgrade."))
                    return redirect(_invoice_url(result.invoice.pk))
                return redirect("orders:order_detail", order_id=order.pk)
    return render(request, "orders/order_change_plan.html", {
        "order": order, "quotes": quotes, "selected": selected, "form": form, "error": error, "can_pay": _can_pay(request),
        "server_notice": provisioning.plan_change_notice(order, selected.plan) if selected else "",
    })


@customer_view(Area.SERVICES)
@require_POST
def order_change_plan_cancel(request: HttpRequest, order_id: int) -> HttpResponse:
    order = selectors.order_get(customer=acting_customer(request), order_id=order_id)
    try:
        plan_change.order_cancel_scheduled_change(order=order, actor=request.user)
        messages.success(request, _("The scheduled plan change is withdrawn."))
    except ValidationError as error:
        messages.error(request, _errors(error))
    return redirect("orders:order_detail", order_id=order.pk)


# --- add-ons of a running service ----------------------------------------------------------------

def _tax_percent(customer):
    from billing.tax import TaxNotConfigured

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
    if quote is None or selected is None:
        return ""
    return provisioning.addon_change_notice(order, selected.addon.kind)
