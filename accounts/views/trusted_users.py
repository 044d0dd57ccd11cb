"""Settings → Trusted users (invite, role, revoke, resend the invitation) and the public invitation page."""
from django.contrib import messages
from django.contrib.auth.forms import SetPasswordForm
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from .. import selectors
from ..client_ip import client_ip
from ..forms import RoleForm, TrustedUserForm
from ..models import User
from ..roles import Area, acting_customer, customer_view
from ..services import trusted_users as trusted_user_services  # module: two views share its functions' names
from ..session_policy import recent_auth_required, recently_authenticated
from ._posts import redirect_back, settings_form_post
from .settings import settings_render


@customer_view(Area.SETTINGS)
def trusted_users(request: HttpRequest) -> HttpResponse:
    customer = acting_customer(request)
    if request.method == "POST" and not recently_authenticated(request):  # inviting a login is a security change
        return recent_auth_required(back="accounts:trusted_users")(trusted_users)(request)
    form = TrustedUserForm(request.POST or None)

    def page(form: TrustedUserForm) -> HttpResponse:
        return settings_render(request, "users", "accounts/settings/trusted_users.html", {
            "form": form, "users": list(selectors.customer_users(customer=customer)), "role_choices": User.Role.choices,
        })

    if request.method != "POST":
        return page(form)
    return settings_form_post(
        request, form,
        save=lambda: trusted_user_services.trusted_user_invite(customer=customer, actor=request.user,
                                                               ip=client_ip(request), **form.cleaned_data),
        success=lambda user: _("%(user)s was added. We emailed them a link to set their password.") % {
            "user": user.username},
        back="accounts:trusted_users", page=page)


@customer_view(Area.SETTINGS)
@require_POST
@recent_auth_required(back="accounts:trusted_users")
def trusted_user_role(request: HttpRequest, user_id: int) -> HttpResponse:
    customer = acting_customer(request)
    target = selectors.customer_user_get(customer=customer, user_id=user_id)
    form = RoleForm(request.POST)
    if not form.is_valid():
        messages.error(request, _("Choose a role."))
        return redirect_back("accounts:trusted_users")
    return settings_form_post(
        request, None,
        save=lambda: trusted_user_services.trusted_user_set_role(
            customer=customer, actor=request.user, user_id=target.pk, role=form.cleaned_data["role"],
            ip=client_ip(request)),
        success=_("Role of %(user)s saved.") % {"user": target.username}, back="accounts:trusted_users")


@customer_view(Area.SETTINGS)
@require_POST
def trusted_user_revoke(request: HttpRequest, user_id: int) -> HttpResponse:
    customer = acting_customer(request)
    target = selectors.customer_user_get(customer=customer, user_id=user_id)
    return settings_form_post(
        request, None,
        save=lambda: trusted_user_services.trusted_user_revoke(customer=customer, actor=request.user,
                                                               user_id=target.pk, ip=client_ip(request)),
        success=_("Access of %(user)s revoked.") % {"user": target.username}, back="accounts:trusted_users")


@customer_view(Area.SETTINGS)
@require_POST
def trusted_user_resend(request: HttpRequest, user_id: int) -> HttpResponse:
    target = selectors.customer_user_get(customer=acting_customer(request), user_id=user_id)
    if target.has_usable_password() or not target.is_active:
        messages.error(request, _("This user has already set a password."))
    else:
        trusted_user_services.invitation_send(user=target, invited_by=request.user)
        messages.success(request, _("Invitation sent again to %(email)s.") % {"email": target.email})
    return redirect_back("accounts:trusted_users")


def invitation_accept(request: HttpRequest, token: str) -> HttpResponse:
    """Public: the invited person sets a password (GET shows the form, POST saves it)."""
    try:
        invited = selectors.invitation_user(token=token)
    except ValidationError as error:
        return render(request, "accounts/invitation.html", {"error": error.messages[0]}, status=400)
    form = SetPasswordForm(invited, request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            trusted_user_services.invitation_accept(token=token, password=form.cleaned_data["new_password1"])
        except ValidationError as error:
            return render(request, "accounts/invitation.html", {"error": error.messages[0]}, status=400)
        messages.success(request, _("Your password is set. Log in with your username %(username)s.") % {
            "username": invited.username})
        return redirect("accounts:login")
    return render(request, "accounts/invitation.html", {"form": form, "invited": invited})
