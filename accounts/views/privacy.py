"""Settings → Privacy: privacy policy / terms review, "export my data" and account deletion requests."""
from django.conf import settings
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from .. import selectors
from ..client_ip import client_ip
from ..forms import DeletionRequestForm
from ..models import DataExport, PolicyVersion
from ..roles import Area, acting_customer, customer_view, role_allows
from ..services import data_export, deletion, policies  # modules: the views share their functions' names
from ._posts import redirect_back, settings_form_post
from .settings import settings_render


def privacy_page(request: HttpRequest, deletion_form: DeletionRequestForm | None = None) -> HttpResponse:
    customer, user = acting_customer(request), request.user
    policies_shown = [{"policy": policy, "accepted": policy.user_accepted_at is not None}
                      for policy in selectors.policies_current_for(user=user)]  # with this user's acceptance: one query
    context = {"policies": policies_shown, "link_hours": settings.ACCOUNTS_EXPORT_LINK_HOURS}
    if role_allows(user, Area.SETTINGS):
        exports, deletion_open = selectors.privacy_requests_for(customer=customer)  # one query
        context.update({
            "exports": exports,
            "export_pending": any(export.status == DataExport.Status.PENDING for export in exports),
            "deletion": deletion_open,
            "deletion_form": deletion_form or DeletionRequestForm(user=user),
        })
    if request.htmx and request.GET.get("part") == "exports":
        return render(request, "accounts/settings/_exports.html", context)
    return settings_render(request, "privacy", "accounts/settings/privacy.html", context)


@customer_view(Area.ACCOUNT)
def settings_privacy(request: HttpRequest) -> HttpResponse:
    return privacy_page(request)


@customer_view(Area.SETTINGS)
@require_POST
def data_export_request(request: HttpRequest) -> HttpResponse:
    try:
        data_export.data_export_request(customer=acting_customer(request), user=request.user, ip=client_ip(request))
    except ValidationError as error:
        messages.info(request, error.messages[0])  # one is already being prepared: not an error
    else:
        messages.success(request, _("We are preparing your data. The download link appears here in a few minutes."))
    return redirect_back("accounts:settings_privacy", "export")


@customer_view(Area.ACCOUNT)
def data_export_download(request: HttpRequest, export_id: int) -> HttpResponse:
    export = selectors.data_export_download(user=request.user, export_id=export_id)
    try:
        handle = export.file.open("rb")
    except FileNotFoundError:
        raise Http404
    filename = f"personal-data-{export.customer_id}-{export.finished_at:%Y%m%d}.zip"
    response = FileResponse(handle, as_attachment=True, filename=filename, content_type="application/zip")
    response["Cache-Control"] = "private, no-store"
    return response


@customer_view(Area.SETTINGS)
@require_POST
def deletion_request(request: HttpRequest) -> HttpResponse:
    form = DeletionRequestForm(request.POST, user=request.user)
    return settings_form_post(
        request, form,
        save=lambda: deletion.deletion_request_create(customer=acting_customer(request), user=request.user,
                                                      reason=form.cleaned_data["reason"], ip=client_ip(request)),
        success=_("Your request is sent. Our staff will review it and email you."),
        back="accounts:settings_privacy", anchor="deletion",
        page=lambda form: privacy_page(request, deletion_form=form))


@customer_view(Area.SETTINGS)
@require_POST
def deletion_request_cancel(request: HttpRequest) -> HttpResponse:
    return settings_form_post(
        request, None,
        save=lambda: deletion.deletion_request_cancel(customer=acting_customer(request), user=request.user,
                                                      ip=client_ip(request)),
        success=_("Your deletion request is withdrawn."), back="accounts:settings_privacy", anchor="deletion")


@customer_view(Area.ACCOUNT)
def policies_review(request: HttpRequest) -> HttpResponse:
    pending = list(selectors.policies_pending_for(user=request.user))
    return render(request, "accounts/policies_review.html", {"pending": pending})


@customer_view(Area.ACCOUNT)
@require_POST
def policies_accept(request: HttpRequest) -> HttpResponse:
    try:
        ids = [int(value) for value in request.POST.getlist("policy")]
    except ValueError:
        ids = []
    try:
        policies.policies_accept(user=request.user, policy_ids=ids, ip=client_ip(request))
    except ValidationError as error:
        messages.error(request, error.messages[0])
        return redirect("accounts:policies_review")
    messages.success(request, _("Thank you. Your acceptance is recorded."))
    return redirect("dashboard")


def policy_document(request: HttpRequest, kind: str) -> HttpResponse:
    """Public: the current text of a document, for anyone (linked from the registration page too)."""
    if kind not in PolicyVersion.Kind.values:
        raise Http404
    return render(request, "accounts/policy.html", {"policy": selectors.policy_current(kind=kind)})
