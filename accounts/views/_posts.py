"""What the accounts views' POSTs share: the settings card shape (written once), safe redirects.

A settings card posts to its own URL: a valid form's data goes to one service; a `ValidationError` from it lands
on the form, which is shown again on its page with the user's input; success leaves a message and
redirects back to the card (an anchor on the section page), so a reload never posts twice.
"""
from collections.abc import Callable
from typing import Any

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.forms import Form
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme

from core.forms import apply_errors


def safe_next_redirect(request: HttpRequest) -> HttpResponseRedirect:
    """A redirect to the POSTed `next` if it is a path on this site, else to the home page. Never
    `redirect()`: it would try `next` as a URL name ("NaN" → NoReverseMatch, a 500)."""
    next_url = request.POST.get("next") or "/"
    if not next_url.startswith("/") or not url_has_allowed_host_and_scheme(
            next_url, allowed_hosts={request.get_host()}, require_https=request.is_secure()):
        next_url = "/"
    return HttpResponseRedirect(next_url)


def redirect_back(url_name: str, anchor: str = "") -> HttpResponse:
    return redirect(reverse(url_name) + (f"#{anchor}" if anchor else ""))


def settings_form_post(request: HttpRequest, form: Form | None, *, save: Callable[[], Any],
                       success: str | Callable[[Any], str | None] | None, back: str, anchor: str = "",
                       page: Callable[[Form], HttpResponse] | None = None,
                       error_field: str | None = None) -> HttpResponse:
    """Call `save()` (the one service call) once `form` is valid, then message and redirect to `back`#`anchor`.

    `success` is the message, or a function of what `save` returned that gives it (or adds its own
    messages and gives None). With a form, an invalid form or a `ValidationError` from `save`
    re-renders `page(form)`; `error_field` names the field a non-field service error belongs to.
    Without a form (a button), a `ValidationError` from `save` becomes an error message on the way back.
    """
    if form is not None and not form.is_valid():
        return page(form)
    try:
        result = save()
    except ValidationError as error:
        if form is None:
            messages.error(request, error.messages[0])
            return redirect_back(back, anchor)
        apply_errors(form, error, field=error_field)
        return page(form)
    message = success(result) if callable(success) else success
    if message:
        messages.success(request, message)
    return redirect_back(back, anchor)
