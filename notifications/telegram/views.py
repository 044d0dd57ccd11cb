"""The Telegram page (link, unlink, kinds) and the bot's webhook.

The deep link is shown only in the response to the "Link Telegram" POST: the token is never stored in
plain text, in the session or in a URL of ours.
"""
import json

from django.conf import settings
from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBadRequest, HttpResponseForbidden, JsonResponse
from django.shortcuts import redirect, render
from django.utils.crypto import constant_time_compare
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from accounts.roles import Area, customer_view

from . import selectors, services
from .forms import TelegramKindsForm


def _require_enabled() -> None:
    if not selectors.telegram_enabled():
        raise Http404


def _page_context(request: HttpRequest, **extra) -> dict:
    link = selectors.link_for(request.user)
    return {
        "link": link,
        "rows": selectors.kind_rows(request.user, link) if link else [],
        "bot_username": settings.TELEGRAM_BOT_USERNAME,
        "token_minutes": settings.TELEGRAM_LINK_TOKEN_TTL // 60,
        **extra,
    }


@customer_view(Area.ACCOUNT)
def telegram_settings(request: HttpRequest) -> HttpResponse:
    _require_enabled()
    return render(request, "telegram/settings.html", _page_context(request))


@never_cache
@require_POST
@customer_view(Area.ACCOUNT)
def link_start(request: HttpRequest) -> HttpResponse:
    _require_enabled()
    token, expires_at = services.link_token_create(user=request.user)
    context = _page_context(request, deep_link=selectors.deep_link(token), expires_at=expires_at)
    if request.htmx:
        return render(request, "telegram/partials/link_card.html", context)
    return render(request, "telegram/settings.html", context)


@require_POST
@customer_view(Area.ACCOUNT)
def unlink(request: HttpRequest) -> HttpResponse:
    _require_enabled()
    if services.link_delete(user=request.user):
        messages.success(request, _("Telegram is unlinked. The bot will not write to that chat any more."))
    return redirect("telegram:settings")


@require_POST
@customer_view(Area.ACCOUNT)
def kinds_save(request: HttpRequest) -> HttpResponse:
    _require_enabled()
    if selectors.link_for(request.user) is None:
        messages.error(request, _("Link Telegram first."))
        return redirect("telegram:settings")
    form = TelegramKindsForm(request.POST, kinds=selectors.kinds_available(request.user))
    if form.is_valid():
        services.link_kinds_update(user=request.user, kinds=form.chosen_kinds())
        messages.success(request, _("Your Telegram notifications are saved."))
    return redirect("telegram:settings")


@csrf_exempt  # Telegram cannot send our CSRF token; the secret header authenticates it instead
@require_POST
def webhook(request: HttpRequest) -> HttpResponse:
    if not selectors.telegram_enabled():
        raise Http404
    secret = request.headers.get("X-Telegram-Bot-Api-Secret-Token", "")
    if not constant_time_compare(secret, settings.TELEGRAM_WEBHOOK_SECRET):
        return HttpResponseForbidden()
    try:
        update = json.loads(request.body)
    except ValueError:
        return HttpResponseBadRequest()
    if not isinstance(update, dict):
        return HttpResponseBadRequest()
    try:
        outcome = services.update_handle(update=update)
    except ValueError:
        return HttpResponseBadRequest()
    return JsonResponse({"ok": True, "outcome": outcome})
