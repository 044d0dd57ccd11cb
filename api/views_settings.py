"""Settings → API keys: create (the token is shown once), list with last use, revoke."""
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST

from accounts.client_ip import client_ip
from accounts.roles import Area, acting_customer, customer_view
from accounts.views.settings import settings_render
from core.forms import apply_errors

from . import selectors, services
from .forms import ApiKeyForm
from .scopes import SCOPE_LABELS


def _page(request: HttpRequest, form: ApiKeyForm, token: str = "", status: int = 200) -> HttpResponse:
    response = settings_render(request, "api_keys", "api/settings_keys.html", {
        "form": form, "keys": selectors.api_keys_visible_to(request.user), "new_token": token, "scope_labels": SCOPE_LABELS,
    })
    response.status_code = status
    return response


@never_cache
@customer_view(Area.ACCOUNT)
@require_http_methods(["GET", "POST"])
def api_keys(request: HttpRequest) -> HttpResponse:
    form = ApiKeyForm(request.POST or None, role=request.user.role)
    if request.method == "POST" and form.is_valid():
        try:
            _key, token = services.api_key_create(
                user=request.user, name=form.cleaned_data["name"], scopes=form.cleaned_data["scopes"],
                expires_at=form.expires_at(), allowed_ips=form.cleaned_data["allowed_ips"], ip=client_ip(request))
        except ValidationError as error:
            apply_errors(form, error)
        else:
            # Rendered, not redirected: the token exists only in this response.
            return _page(request, ApiKeyForm(role=request.user.role), token=token)
    return _page(request, form, status=400 if form.is_bound else 200)


@customer_view(Area.ACCOUNT)
@require_POST
def api_key_revoke(request: HttpRequest, key_id: int) -> HttpResponse:
    key = selectors.api_key_get(user=request.user, key_id=key_id)
    services.api_key_revoke(key=key, actor=request.user, ip=client_ip(request))
    messages.success(request, _("The key “%(name)s” is revoked.") % {"name": key.name})
    return redirect("api:settings_keys")


# --- Settings → Webhooks ---------------------------------------------------------------------------

def _webhooks_page(request: HttpRequest, form, secret: str = "", status: int = 200) -> HttpResponse:
    from .webhooks import EVENT_LABELS

    customer = acting_customer(request)
    response = settings_render(request, "webhooks", "api/settings_webhooks.html", {
        "form": form, "endpoints": selectors.webhook_endpoints_for(customer), "new_secret": secret,
        "deliveries": selectors.webhook_deliveries_for(customer), "event_labels": EVENT_LABELS,
    })
    response.status_code = status
    return response


@never_cache
@customer_view(Area.SETTINGS)
@require_http_methods(["GET", "POST"])
def webhooks(request: HttpRequest) -> HttpResponse:
    from .forms import WebhookEndpointForm
    from .webhooks import webhook_endpoint_create

    form = WebhookEndpointForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            endpoint = webhook_endpoint_create(customer=acting_customer(request), user=request.user, url=form.cleaned_data["url"],
                                               events=form.cleaned_data["events"], ip=client_ip(request))
        except ValidationError as error:
            apply_errors(form, error, field="url")
        else:
            return _webhooks_page(request, WebhookEndpointForm(), secret=endpoint.secret)
    return _webhooks_page(request, form, status=400 if form.is_bound else 200)


@customer_view(Area.SETTINGS)
@require_POST
def webhook_delete(request: HttpRequest, endpoint_id: int) -> HttpResponse:
    from .webhooks import webhook_endpoint_delete

    endpoint = selectors.webhook_endpoint_get(customer=acting_customer(request), endpoint_id=endpoint_id)
    webhook_endpoint_delete(endpoint=endpoint, user=request.user, ip=client_ip(request))
    messages.success(request, _("The endpoint is deleted."))
    return redirect("api:settings_webhooks")


@customer_view(Area.SETTINGS)
@require_POST
def webhook_enable(request: HttpRequest, endpoint_id: int) -> HttpResponse:
    from .webhooks import webhook_endpoint_enable

    endpoint = selectors.webhook_endpoint_get(customer=acting_customer(request), endpoint_id=endpoint_id)
    webhook_endpoint_enable(endpoint=endpoint, user=request.user)
    messages.success(request, _("The endpoint is enabled again."))
    return redirect("api:settings_webhooks")


@customer_view(Area.SETTINGS)
@require_POST
def webhook_replay(request: HttpRequest, delivery_id: int) -> HttpResponse:
    from .webhooks import webhook_delivery_replay

    delivery = selectors.webhook_delivery_get(customer=acting_customer(request), delivery_id=delivery_id)
    webhook_delivery_replay(delivery=delivery)
    messages.success(request, _("The event will be sent again."))
    return redirect("api:settings_webhooks")
