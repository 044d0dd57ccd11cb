"""Customer pages for controlling a server: the live state panel (htmx) and power actions.

Controls need Area.SERVICES (owner, Technical); the state panel is also shown to roles that see
billing (Finance), without controls. Every order id goes through the customer-scoped selector (404).
"""
import uuid

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods

from accounts.client_ip import client_ip
from accounts.roles import Area, acting_customer, customer_view, role_allows
from core import ratelimit

from . import selectors, server_control
from .models import ProvisioningJob


def _power_buttons() -> list[tuple[str, str, str]]:
    styles = {"start": "btn-success", "shutdown": "btn-outline-secondary", "reboot": "btn-outline-primary",
              "power_off": "btn-outline-danger"}
    return [(action, ProvisioningJob.Action(action).label, styles[action]) for action in server_control.POWER_ACTIONS]


def _state_context(request, order) -> dict:
    return {"order": order, "server": server_control.server_state(order=order),
            "can_control": role_allows(request.user, Area.SERVICES), "power_buttons": _power_buttons()}


@customer_view(Area.ACCOUNT)
@require_GET
def server_state(request: HttpRequest, order_id: int) -> HttpResponse:
    """The state panel, loaded by htmx after the page (the hypervisor never delays the page itself)."""
    if not (role_allows(request.user, Area.SERVICES) or role_allows(request.user, Area.BILLING)):
        raise PermissionDenied(_("Your role does not give access to this section."))
    order = selectors.order_get(customer=acting_customer(request), order_id=order_id, plan_locations=False)
    if not request.htmx:
        return redirect("orders:order_detail", order_id=order.pk)
    return render(request, "orders/_server_state.html", _state_context(request, order))


@customer_view(Area.SERVICES)
@require_http_methods(["GET", "POST"])
def server_power(request: HttpRequest, order_id: int, action: str) -> HttpResponse:
    """GET: the confirmation (inline with htmx, a page without). POST: queue the action."""
    if action not in server_control.POWER_ACTIONS:
        raise Http404
    order = selectors.order_get(customer=acting_customer(request), order_id=order_id)
    label = ProvisioningJob.Action(action).label
    if request.method == "GET":
        template = "orders/_server_confirm.html" if request.htmx else "orders/server_confirm.html"
        return render(request, template, {"order": order, "action": action, "label": label,
                                          "request_id": uuid.uuid4().hex})
    limit, window = ratelimit.parse_rule(settings.SERVER_POWER_RATE_LIMIT)
    retry_after = ratelimit.hit("server-power", str(order.pk), limit=limit, window=window)
    if retry_after:
        return ratelimit.limited_response(request, retry_after)
    try:
        server_control.server_power(order=order, action=action, request_id=request.POST.get("request_id", ""),
                                    actor=request.user, ip=client_ip(request))
    except ValidationError as error:
        if request.htmx:
            return render(request, "orders/_server_state.html",
                          _state_context(request, order) | {"error": " ".join(error.messages)}, status=400)
        messages.error(request, " ".join(error.messages))
        return redirect("orders:order_detail", order_id=order.pk)
    if request.htmx:
        return render(request, "orders/_server_state.html",
                      _state_context(request, order) | {"notice": _("%(action)s requested.") % {"action": label}})
    messages.success(request, _("%(action)s requested.") % {"action": label})
    return redirect("orders:order_detail", order_id=order.pk)


@customer_view(Area.SERVICES)
@require_http_methods(["GET", "POST"])
def server_reinstall(request: HttpRequest, order_id: int) -> HttpResponse:
    """Reinstall with another (or the same) OS: confirmed by the password or a 2FA code."""
    from django.contrib.auth.signals import user_login_failed

    from .server_forms import ReinstallForm

    order = selectors.order_get(customer=acting_customer(request), order_id=order_id)
    if not server_control.server_controllable(order):
        messages.error(request, _("This server cannot be reinstalled now."))
        return redirect("orders:order_detail", order_id=order.pk)
    images = server_control.reinstall_images(order)
    form = ReinstallForm(request.POST or None, user=request.user, images=images,
                         initial={"os_image": order.options.get("os_image", "")})
    request_id = request.POST.get("request_id") or uuid.uuid4().hex
    if request.method == "POST":
        limit, window = ratelimit.parse_rule(settings.SERVER_POWER_RATE_LIMIT)
        retry_after = ratelimit.hit("server-power", str(order.pk), limit=limit, window=window)
        if retry_after:
            return ratelimit.limited_response(request, retry_after)
        if form.is_valid():
            try:
                server_control.server_reinstall(order=order, os_image=form.cleaned_data["os_image"],
                                                ssh_key=form.cleaned_data["ssh_key"].strip(), request_id=request_id,
                                                actor=request.user, ip=client_ip(request))
            except ValidationError as error:
                form.add_error(None, error)
            else:
                messages.success(request, _("Reinstall started. The new root password is shown here once it is done."))
                return redirect("orders:order_detail", order_id=order.pk)
        elif form.has_error("__all__", "invalid"):  # wrong password or code: counts towards the lockout
            user_login_failed.send(sender=__name__, credentials={"username": request.user.username}, request=request)
    return render(request, "orders/server_reinstall.html", {"order": order, "form": form, "request_id": request_id})


@customer_view(Area.SERVICES)
@require_http_methods(["POST"])
def server_console(request: HttpRequest, order_id: int) -> HttpResponse:
    """Open the browser console: a one-time token for websockify and the VNC password (POST: it issues them)."""
    from .console import console_open

    order = selectors.order_get(customer=acting_customer(request), order_id=order_id)
    try:
        access = console_open(order=order, actor=request.user, ip=client_ip(request))
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
        return redirect("orders:order_detail", order_id=order.pk)
    ws_url = settings.CONSOLE_WEBSOCKET_URL
    response = render(request, "orders/server_console.html", {
        "order": order, "ws_url": ws_url, "token": access.token, "vnc_password": access.password})
    response["Cache-Control"] = "no-store"
    if "://" in ws_url:  # websockify on another origin (development, tests): allow just that one
        from urllib.parse import urlsplit

        origin = urlsplit(ws_url)
        response["Content-Security-Policy"] = settings.CONTENT_SECURITY_POLICY.replace(
            "connect-src 'self'", f"connect-src 'self' {origin.scheme}://{origin.netloc}")
    return response


@customer_view(Area.SERVICES)
@require_http_methods(["GET", "POST"])
def server_reverse_dns(request: HttpRequest, order_id: int) -> HttpResponse:
    """PTR records of the service's addresses (PowerDNS)."""
    from . import reverse_dns

    order = selectors.order_get(customer=acting_customer(request), order_id=order_id, plan_locations=False)
    error = ""
    if request.method == "POST":
        try:
            reverse_dns.ptr_set(order=order, address=request.POST.get("address", "")[:64],
                                hostname=request.POST.get("hostname", "")[:300], actor=request.user, ip=client_ip(request))
        except ValidationError as problem:
            error = " ".join(problem.messages)
        else:
            messages.success(request, _("Reverse DNS saved."))
            return redirect("orders:server_reverse_dns", order_id=order.pk)
    return render(request, "orders/server_reverse_dns.html", {
        "order": order, "records": reverse_dns.ptr_records(order), "error": error,
        "posted": request.POST if request.method == "POST" else {}}, status=400 if error else 200)


@customer_view(Area.SERVICES)
@require_GET
def server_usage(request: HttpRequest, order_id: int) -> HttpResponse:
    """Usage graphs and traffic against the plan's quota (htmx, after the page)."""
    from . import traffic_quota, usage

    order = selectors.order_get(customer=acting_customer(request), order_id=order_id, plan_locations=False)
    if not request.htmx:
        return redirect("orders:order_detail", order_id=order.pk)
    vm = usage.usage_vm(order)  # once, for the graphs, the traffic count and the throttle
    return render(request, "orders/_server_usage.html", {
        "order": order, "charts": [usage.usage_chart(order, vm=vm), usage.usage_chart(order, days=30, vm=vm)],
        "traffic": usage.traffic_summary(order, vm=vm), "throttle": vm and traffic_quota.traffic_throttle(order, vm=vm)})
