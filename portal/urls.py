from django.contrib import admin
from django.urls import include, path
from django.views.i18n import JavaScriptCatalog

from . import metrics, views

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("healthz", views.healthz, name="healthz"),
    path("metrics", metrics.metrics, name="metrics"),
    path("i18n/", include("django.conf.urls.i18n")),
    path("jsi18n/", JavaScriptCatalog.as_view(), name="javascript-catalog"),
    path("admin/", admin.site.urls),
    path("accounts/whoami", views.whoami, name="whoami"),
    path("accounts/social/", include("accounts.social_urls")),  # django-allauth: social login only
    path("accounts/", include("accounts.urls")),
    path("notifications/", include("notifications.urls")),
    path("notifications/telegram/", include("notifications.telegram.urls")),
    path("billing/", include("billing.urls")),
    path("pay/", include("billing.gateways.urls")),
    path("orders/", include("orders.urls")),
    path("tickets/", include("tickets.urls")),
    path("api/", include("api.urls")),
    path("passkeys/", include("passkeys.urls")),
]

handler403 = "portal.views.permission_denied"
handler404 = "portal.views.page_not_found"
handler500 = "portal.views.server_error"
