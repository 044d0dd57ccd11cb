"""A login's avatar (upload, remove, the private image itself), light/dark theme, unlinking a social login."""
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from .. import selectors
from ..client_ip import client_ip
from ..forms import AvatarForm
from ..roles import Area, acting_customer, customer_view
from ..services.profile import user_remove_avatar, user_set_avatar, user_set_theme
from ..services.social import social_account_unlink
from ._posts import safe_next_redirect, settings_form_post
from .settings import profile_page


@customer_view(Area.ACCOUNT)
@require_POST
def settings_avatar(request: HttpRequest) -> HttpResponse:
    form = AvatarForm(request.POST, request.FILES)
    return settings_form_post(
        request, form, save=lambda: user_set_avatar(user=request.user, upload=form.cleaned_data["avatar"]),
        success=_("Your avatar is updated."), back="accounts:settings_profile", anchor="avatar",
        page=lambda form: profile_page(request, avatar_form=form), error_field="avatar")


@customer_view(Area.ACCOUNT)
@require_POST
def settings_avatar_remove(request: HttpRequest) -> HttpResponse:
    return settings_form_post(request, None, save=lambda: user_remove_avatar(user=request.user),
                              success=_("Your avatar is removed."), back="accounts:settings_profile", anchor="avatar")


@customer_view(Area.ACCOUNT)
def avatar(request: HttpRequest, user_id: int) -> HttpResponse:
    """Avatars are private files: only users of the same customer see them."""
    target = selectors.customer_user_get(customer=acting_customer(request), user_id=user_id)
    if not target.avatar:
        raise Http404
    try:
        handle = target.avatar.open("rb")
    except FileNotFoundError:
        raise Http404
    content_type = "image/png" if target.avatar.name.endswith(".png") else "image/jpeg"
    response = FileResponse(handle, content_type=content_type)
    response["Cache-Control"] = "private, max-age=86400"  # the URL changes with the file (?v=name)
    response["X-Content-Type-Options"] = "nosniff"
    return response


@require_POST
def theme_set(request: HttpRequest) -> HttpResponse:
    """Light/dark colour mode, remembered on the user (staff too)."""
    if not request.user.is_authenticated:
        return redirect("accounts:login")
    try:
        user_set_theme(user=request.user, theme=request.POST.get("theme", ""))
    except ValidationError as error:
        messages.error(request, error.messages[0])
    return safe_next_redirect(request)


@customer_view(Area.ACCOUNT)
@require_POST
def settings_social_unlink(request: HttpRequest, account_id: int) -> HttpResponse:
    if account_id not in {account.pk for account in selectors.social_accounts_for(user=request.user)}:
        raise Http404
    return settings_form_post(
        request, None,
        save=lambda: social_account_unlink(user=request.user, account_id=account_id, ip=client_ip(request)),
        success=lambda provider: _("Login with %(provider)s is unlinked.") % {"provider": provider},
        back="accounts:settings_security", anchor="social-login")
