from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.template.loader import render_to_string
from django.utils import timezone
from django.utils.translation import get_language
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from accounts.roles import Area, acting_customer, customer_view
from core.topbar import cached_for_customer

from . import health
from .charts import bar_chart
from .selectors import dashboard_data, spending_by_month


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
    if data["can"][Area.BILLING]:
        data["chart_html"] = spending_charts(customer, data["now"])
    return render(request, "dashboard.html", {"customer": customer, **data})


def spending_charts(customer, now) -> list[str]:
    """The spending chart: the shared Django partial rendered once per currency (0.45 ms; 0.25 in Jinja2: not
    worth a second copy of its markup), kept as HTML under the customer's top-bar tokens. Only an invoice
    being paid changes it (a refunded one still counts), and paying moves the balance, which replaces the
    tokens; the name carries what else it depends on (account currency, zone, month, language)."""
    local_now = timezone.localtime(now)
    return cached_for_customer(
        customer.pk, f"spending-chart:{customer.currency}:{local_now.tzinfo}:{local_now:%Y-%m}:{get_language()}",
        lambda: [render_to_string("partials/bar_chart.html", {
            "series": series, "chart": bar_chart([(m.month, m.amount) for m in series.months], series.currency)})
            for series in spending_by_month(customer=customer, now=now)])


def permission_denied(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return render(request, "errors/403.html", {"reason": str(exception or "")}, status=403)


def page_not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return render(request, "errors/404.html", status=404)


def server_error(request: HttpRequest) -> HttpResponse:
    return render(request, "errors/500.html", status=500)
