from django.urls import path

from . import views

app_name = "telegram"

urlpatterns = [
    path("", views.telegram_settings, name="settings"),
    path("link/", views.link_start, name="link"),
    path("unlink/", views.unlink, name="unlink"),
    path("kinds/", views.kinds_save, name="kinds"),
    path("webhook/", views.webhook, name="webhook"),
]
