from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.template.loader import render_to_string
from django.utils.html import conditional_escape
from django.utils.safestring import mark_safe
from django.utils.translation import gettext, ngettext
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from accounts.roles import Area, acting_customer, customer_view
from billing.money import format_money

from . import health
from .charts import bar_chart
from .selectors import dashboard_data


@require_GET
@never_cache
def healthz(request: HttpRequest) -> JsonResponse:
    """Each component's state. 503 only when a required component fails (HEALTHZ_REQUIRED, plus any
    named in `?require=a,b` by monitoring); the others are listed under "degraded". Anyone (load
    balancers) sees ok/fail; the error texts (hosts, ports, driver messages) only staff or a request
    carrying HEALTHZ_TOKEN as `Authorization: Bearer <token>`."""
    checks = health.component_errors()
    required = set(settings.HEALTHZ_REQUIRED) | {
        name for name in request.GET.get("require", "").split(",") if name in health.COMPONENTS}
    failing = [name for name, error in checks.items() if error and name in required]
    details = health.may_see_details(request)
    body = {
        "status": "ok" if not failing else "error",
        "failing": failing,
        "degraded": [name for name, error in checks.items() if error and name not in required],
        "checks": {name: "ok" if error is None else (error if details else "fail") for name, error in checks.items()},
    }
    return JsonResponse(body, status=200 if not failing else 503)


@require_GET
@never_cache
def whoami(request: HttpRequest) -> JsonResponse:
    """The session's user as JSON: a session check for scripts and the smallest authenticated page
    (bench/pages.py measures every page against it)."""
    user = request.user
    if not user.is_authenticated:
        return JsonResponse({"authenticated": False}, status=401)
    return JsonResponse({"authenticated": True, "username": user.username, "customer_id": user.customer_id,
                         "role": user.role if user.customer_id else "staff"})


@customer_view(Area.ACCOUNT)
def dashboard(request: HttpRequest) -> HttpResponse:
    """The home page: only the cards the user's role allows (portal.selectors.dashboard_data)."""
    customer = acting_customer(request)
    data = dashboard_data(customer=customer, user=request.user)
    return render(request, "dashboard.html", {"customer": customer, **data, **_dashboard_messages(request.user, customer, data)})


def _message(text: str, **values) -> str:
    """A translated message with its values put in as `{% blocktranslate %}` does: the values escaped, the
    message not."""
    return mark_safe(text % {name: conditional_escape(value) for name, value in values.items()})


def _dashboard_messages(user, customer, data: dict) -> dict:
    """The body is a Jinja2 template (jinja2/dashboard.jinja.html): its messages with values are made here
    with the catalogue's msgids, plural forms included, the values escaped by Django (Jinja's gettext escapes
    them with markupsafe, which writes a quote in an email address as `&#34;`, not `&quot;`); the spending
    chart is the shared Django partial, rendered once per currency (0.45 ms; 0.25 in Jinja2: not worth a
    second copy of its markup)."""
    found: dict = {}
    if not user.email_verified:
        found["unverified_message"] = _message(gettext(
            "Your email address %(email)s is not verified yet. Open the link we sent you."), email=user.email)
    if "services" in data:
        found["services"] = [(order, _days_label(order.days_left)) for order in data["services"]]
    forecast = data.get("forecast")
    if forecast is not None:
        code = forecast.currency
        found["balance_title"] = _message(gettext("Balance (%(code)s)"), code=customer.currency)
        found["unpaid_summary_labels"] = [_message(ngettext(
            "%(counter)s unpaid invoice, %(due)s due", "%(counter)s unpaid invoices, %(due)s due", row["count"]),
            counter=row["count"], due=format_money(row["due"], row["currency"])) for row in data["unpaid_summary"]]
        found["chart_html"] = [render_to_string("partials/bar_chart.html", {
            "series": series, "chart": bar_chart([(m.month, m.amount) for m in series.months], series.currency)})
            for series in data["spending"]]
        if forecast.autopay_enabled:
            found["shortfall_message"] = _message(gettext(
                "Your balance and auto-payment will not cover every renewal: add %(amount)s to keep your services "
                "running."), amount=format_money(forecast.shortfall, code))
            found["autopay_message"] = _message(gettext("Auto-payment: up to %(amount)s left this month"),
                                                amount=format_money(forecast.autopay_left_this_month, code))
        else:
            found["shortfall_message"] = _message(gettext(
                "Your balance will not cover every renewal: add %(amount)s to keep your services running."),
                amount=format_money(forecast.shortfall, code))
        found["balance_now_message"] = _message(gettext("Balance now: %(amount)s"), amount=format_money(forecast.balance, code))
        if forecast.more_count:
            found["forecast_more_message"] = _message(ngettext(
                "and %(counter)s more renewal totalling %(amount)s", "and %(counter)s more renewals totalling %(amount)s",
                forecast.more_count), counter=forecast.more_count, amount=format_money(forecast.more_total, code))
    return found


def _days_label(days: int | None) -> str:
    return "" if days is None else ngettext("%(days)s day", "%(days)s days", days) % {"days": days}


def permission_denied(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return render(request, "errors/403.html", {"reason": str(exception or "")}, status=403)


def page_not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return render(request, "errors/404.html", status=404)


def server_error(request: HttpRequest) -> HttpResponse:
    return render(request, "errors/500.html", status=500)
