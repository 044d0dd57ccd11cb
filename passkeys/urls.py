from django.urls import path

from . import views

app_name = "passkeys"

urlpatterns = [
    path("settings/", views.passkeys_settings, name="settings"),
    path("register/options/", views.register_options, name="register_options"),
    path("register/", views.register, name="register"),
    path("<int:passkey_id>/delete/", views.delete, name="delete"),
    path("login/", views.login_page, name="login"),
    path("login/options/", views.login_options, name="login_options"),
    path("login/verify/", views.login, name="login_verify"),
]
