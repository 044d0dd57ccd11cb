from django.contrib.auth import views as auth_views
from django.urls import path

from . import views

app_name = "accounts"

urlpatterns = [
    path("register/", views.register, name="register"),
    path("verify/<str:token>/", views.verify_email, name="verify_email"),
    path("verify-resend/", views.resend_verification, name="resend_verification"),
    path("login/", views.LoginView.as_view(), name="login"),
    path("login/verify/", views.login_verify, name="login_verify"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("language/", views.set_language, name="set_language"),
    path("invitation/<str:token>/", views.invitation_accept, name="invitation_accept"),
    path("settings/", views.account_settings, name="settings"),
    path("settings/profile/", views.settings_profile, name="settings_profile"),
    path("settings/profile/contact/", views.settings_contact, name="settings_contact"),
    path("settings/profile/phone/", views.settings_phone, name="settings_phone"),
    path("settings/profile/phone/verify/", views.settings_phone_verify, name="settings_phone_verify"),
    path("settings/profile/address/", views.settings_address, name="settings_address"),
    path("settings/profile/type/", views.settings_profile_type, name="settings_profile_type"),
    path("settings/preferences/", views.settings_preferences, name="settings_preferences"),
    path("settings/email-routing/", views.settings_email_routing, name="settings_email"),
    path("settings/security/", views.settings_security, name="settings_security"),
    path("settings/security/code-word/", views.settings_code_word, name="settings_code_word"),
    path("settings/security/ip-restriction/", views.settings_ip_allowlist, name="settings_ip_allowlist"),
    path("settings/security/login-options/", views.settings_login_options, name="settings_login_options"),
    path("settings/security/2fa/start/", views.settings_2fa_start, name="settings_2fa_start"),
    path("settings/security/2fa/confirm/", views.settings_2fa_confirm, name="settings_2fa_confirm"),
    path("settings/security/2fa/disable/", views.settings_2fa_disable, name="settings_2fa_disable"),
    path("settings/activity/", views.activity, name="activity"),
    path("settings/users/", views.trusted_users, name="trusted_users"),
    path("settings/users/<int:user_id>/role/", views.trusted_user_role, name="trusted_user_role"),
    path("settings/users/<int:user_id>/revoke/", views.trusted_user_revoke, name="trusted_user_revoke"),
    path("settings/users/<int:user_id>/resend/", views.trusted_user_resend, name="trusted_user_resend"),
    path("password/change/", views.password_change, name="password_change"),
    path("password/reset/", views.PasswordResetView.as_view(), name="password_reset"),
    path(
        "password/reset/sent/",
        auth_views.PasswordResetDoneView.as_view(template_name="accounts/password_reset_done.html"),
        name="password_reset_done",
    ),
    path("password/reset/<uidb64>/<token>/", views.PasswordResetConfirmView.as_view(), name="password_reset_confirm"),
    path(
        "password/reset/complete/",
        auth_views.PasswordResetCompleteView.as_view(template_name="accounts/password_reset_complete.html"),
        name="password_reset_complete",
    ),
]
