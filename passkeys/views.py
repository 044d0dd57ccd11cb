"""Settings → Passkeys (add, list, remove) and "Log in with a passkey". The ceremonies' JSON endpoints
are POST only (each stores or consumes a one-time challenge) and CSRF-protected."""
import json

from django.contrib import messages
from django.contrib.auth import login as auth_login
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from accounts.client_ip import client_ip
from accounts.ip_allowlist import ip_permitted
from accounts.roles import Area, customer_view
from accounts.views.settings import settings_render

from . import services
from .models import Passkey

LOGIN_BACKEND = "accounts.backends.UsernameOrEmailBackend"


def _error(error: ValidationError, status: int = 400) -> JsonResponse:
    return JsonResponse({"error": error.messages[0]}, status=status)


def _body(request: HttpRequest) -> dict:
    try:
        body = json.loads(request.body or b"{}")
    except ValueError:
        body = None
    return body if isinstance(body, dict) else {}


@customer_view(Area.ACCOUNT)
@require_GET
def passkeys_settings(request: HttpRequest) -> HttpResponse:
    return settings_render(request, "passkeys", "passkeys/settings.html",
                           {"passkeys": Passkey.objects.filter(user=request.user).order_by("-created_at", "-pk")})


@customer_view(Area.ACCOUNT)
@require_POST
def register_options(request: HttpRequest) -> HttpResponse:
    return HttpResponse(services.registration_options(user=request.user, session=request.session), content_type="application/json")


@customer_view(Area.ACCOUNT)
@require_POST
def register(request: HttpRequest) -> JsonResponse:
    body = _body(request)
    try:
        services.passkey_register(user=request.user, session=request.session, credential=json.dumps(body.get("credential")),
                                  name=str(body.get("name", "")), ip=client_ip(request))
    except ValidationError as error:
        return _error(error)
    messages.success(request, _("The passkey is added. You can now log in with it."))
    return JsonResponse({"redirect": reverse("passkeys:settings")})


@customer_view(Area.ACCOUNT)
@require_POST
def delete(request: HttpRequest, passkey_id: int) -> HttpResponse:
    passkey = get_object_or_404(Passkey, pk=passkey_id, user=request.user)
    services.passkey_delete(passkey=passkey, actor=request.user, ip=client_ip(request))
    messages.success(request, _("The passkey is removed."))
    return redirect("passkeys:settings")


@require_GET
def login_page(request: HttpRequest) -> HttpResponse:
    if request.user.is_authenticated:
        return redirect("dashboard")
    return render(request, "passkeys/login.html", {"next": request.GET.get("next", "")})


@require_POST
def login_options(request: HttpRequest) -> HttpResponse:
    return HttpResponse(services.authentication_options(session=request.session), content_type="application/json")


@require_POST
def login(request: HttpRequest) -> JsonResponse:
    body = _body(request)
    try:
        user = services.passkey_authenticate(session=request.session, credential=body.get("credential") or {})
    except ValidationError as error:
        return _error(error)
    if not ip_permitted(user.customer.ip_allowlist, client_ip(request)):
        return _error(ValidationError(_("Logging in from your IP address is not allowed for this account.")), status=403)
    auth_login(request, user, backend=LOGIN_BACKEND)
    next_url = str(body.get("next") or "")
    if not url_has_allowed_host_and_scheme(next_url, allowed_hosts={request.get_host()}, require_https=request.is_secure()):
        next_url = reverse("dashboard")
    return JsonResponse({"redirect": next_url})
