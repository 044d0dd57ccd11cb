from django.urls import path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView

from . import views, views_settings

app_name = "api"

v1 = [
    path("account", views.AccountView.as_view(), name="account"),
    path("balance", views.BalanceView.as_view(), name="balance"),
    path("services", views.ServiceListView.as_view(), name="services"),
    path("services/<int:service_id>", views.ServiceDetailView.as_view(), name="service"),
    path("services/<int:service_id>/renew", views.ServiceRenewView.as_view(), name="service_renew"),
    path("services/<int:service_id>/plans", views.ServicePlansView.as_view(), name="service_plans"),
    path("services/<int:service_id>/change-plan", views.ServiceChangePlanView.as_view(), name="service_change_plan"),
    path("services/<int:service_id>/cancel", views.ServiceCancelView.as_view(), name="service_cancel"),
    path("services/<int:service_id>/power", views.ServicePowerView.as_view(), name="service_power"),
    path("invoices", views.InvoiceListView.as_view(), name="invoices"),
    path("invoices/<int:invoice_id>", views.InvoiceDetailView.as_view(), name="invoice"),
    path("invoices/<int:invoice_id>/pdf", views.InvoicePdfView.as_view(), name="invoice_pdf"),
    path("invoices/<int:invoice_id>/pay", views.InvoicePayView.as_view(), name="invoice_pay"),
    path("payments", views.PaymentListView.as_view(), name="payments"),
    path("payments/<int:payment_id>", views.PaymentDetailView.as_view(), name="payment"),
    path("departments", views.DepartmentListView.as_view(), name="departments"),
    path("tickets", views.TicketListView.as_view(), name="tickets"),
    path("tickets/<int:ticket_id>", views.TicketDetailView.as_view(), name="ticket"),
    path("tickets/<int:ticket_id>/replies", views.TicketReplyView.as_view(), name="ticket_replies"),
    path("attachments/<int:attachment_id>", views.AttachmentDownloadView.as_view(), name="attachment"),
    path("notifications", views.NotificationListView.as_view(), name="notifications"),
    path("notifications/<int:notification_id>", views.NotificationDetailView.as_view(), name="notification"),
    path("notifications/<int:notification_id>/read", views.NotificationReadView.as_view(), name="notification_read"),
]

urlpatterns = [
    *[path(f"v1/{p.pattern}", p.callback, name=p.name) for p in v1],
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", SpectacularRedocView.as_view(url_name="api:schema", template_name="api/redoc.html"), name="docs"),
    path("keys/", views_settings.api_keys, name="settings_keys"),
    path("keys/<int:key_id>/revoke/", views_settings.api_key_revoke, name="settings_key_revoke"),
    path("webhooks/", views_settings.webhooks, name="settings_webhooks"),
    path("webhooks/<int:endpoint_id>/delete/", views_settings.webhook_delete, name="settings_webhook_delete"),
    path("webhooks/<int:endpoint_id>/enable/", views_settings.webhook_enable, name="settings_webhook_enable"),
    path("webhooks/deliveries/<int:delivery_id>/replay/", views_settings.webhook_replay, name="settings_webhook_replay"),
]
