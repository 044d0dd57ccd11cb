from django.urls import path

from . import views

app_name = "gateways"

urlpatterns = [
    path("invoices/<int:invoice_id>/", views.pay_invoice, name="pay_invoice"),
    path("attempts/<uuid:reference>/", views.attempt_status, name="attempt"),
    path("methods/", views.payment_methods, name="methods"),
    path("methods/<int:method_id>/default/", views.method_make_default, name="method_default"),
    path("methods/<int:method_id>/remove/", views.method_remove, name="method_remove"),
    path("autopay/", views.autopay, name="autopay"),
    path("link/<int:invoice_id>/<str:token>/", views.pay_link, name="pay_link"),
    path("webhooks/<slug:gateway_code>/", views.webhook, name="webhook"),
    # The sandbox provider's own pages, as if on another site.
    path("sandbox-provider/checkout/<str:checkout_id>/", views.sandbox_checkout, name="sandbox_checkout"),
    path("sandbox-provider/checkout/<str:checkout_id>/cancel/", views.sandbox_checkout_cancel, name="sandbox_cancel"),
]
