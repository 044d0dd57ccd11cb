"""Inbox and email subscriptions.

GET never changes state: opening a notification shows it; the detail page then POSTs
"mark as read" by itself via htmx (hx-trigger="load"), and without JavaScript the same form is a
visible "Mark as read" button.
"""
from functools import lru_cache

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import get_language, gettext as _
from django.views.decorators.http import require_POST

from accounts.roles import Area, acting_customer, customer_view, role_allows

from . import selectors, services
from .forms import SubscriptionsForm
from .models import Notification

PAGE_SIZE = 20


@customer_view(Area.ACCOUNT)
def inbox(request: HttpRequest) -> HttpResponse:
    customer = acting_customer(request)
    rows, count = selectors.inbox_rows(customer, user=request.user)
    paginator = Paginator(rows, PAGE_SIZE)
    paginator.count = count  # a cached_property: the Paginator never counts the rows itself
    return render(request, "notifications/inbox.html", {
        "page": paginator.get_page(request.GET.get("page")), "kind_labels": _kind_labels(get_language()),
        "can_manage_subscriptions": role_allows(request.user, Area.SETTINGS),
    })


@lru_cache(maxsize=8)
def _kind_labels(language: str | None) -> dict[str, str]:
    """The kinds' labels in `language` (the active one), made once per language for the inbox rows."""
    return {value: str(label) for value, label in Notification._meta.get_field("kind").flatchoices}


@customer_view(Area.ACCOUNT)
def notification_detail(request: HttpRequest, notification_id: int) -> HttpResponse:
    notification = selectors.notification_get(customer=acting_customer(request), user=request.user,
                                              notification_id=notification_id)
    return render(request, "notifications/detail.html", {"notification": notification})


@require_POST
@customer_view(Area.ACCOUNT)
def notification_read(request: HttpRequest, notification_id: int) -> HttpResponse:
    customer = acting_customer(request)
    notification = services.notification_mark_read(customer=customer, user=request.user,
                                                   notification_id=notification_id)
    if request.htmx:
        # Replaces the read-state area and, out of band, the unread badge in the navigation.
        return render(request, "notifications/partials/read_state.html", {
            "notification": notification, "unread_count": selectors.unread_count(customer, user=request.user), "oob": True,
        })
    return redirect("notifications:detail", notification_id=notification.pk)


@require_POST
@customer_view(Area.ACCOUNT)
def mark_all_read(request: HttpRequest) -> HttpResponse:
    count = services.notification_mark_all_read(customer=acting_customer(request), user=request.user)
    if count:
        messages.success(request, _("All notifications are marked as read."))
    return redirect("notifications:inbox")


@customer_view(Area.SETTINGS)
def subscriptions(request: HttpRequest) -> HttpResponse:
    customer = acting_customer(request)
    form = SubscriptionsForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        services.preferences_update(customer=customer, email_enabled=form.email_choices())
        messages.success(request, _("Your email subscriptions are saved."))
        return redirect("notifications:subscriptions")
    return render(request, "notifications/subscriptions.html", {
        "form": form, "rows": selectors.subscriptions_for(customer),
    })
