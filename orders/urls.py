from django.urls import path

from . import server_views, views

app_name = "orders"

urlpatterns = [
    path("", views.order_list, name="order_list"),
    path("renew/", views.order_batch_renew, name="order_batch_renew"),
    path("new/", views.catalogue, name="catalogue"),
    path("new/<int:plan_id>/", views.order_new, name="order_new"),
    path("new/<int:plan_id>/confirm/", views.order_confirm, name="order_confirm"),
    path("new/<int:plan_id>/summary/", views.order_summary, name="order_summary"),
    path("<int:order_id>/", views.order_detail, name="order_detail"),
    path("<int:order_id>/setup/", views.order_setup_progress, name="order_setup_progress"),
    path("<int:order_id>/root-password/", views.order_root_password, name="order_root_password"),
    path("<int:order_id>/server/state/", server_views.server_state, name="server_state"),
    path("<int:order_id>/server/power/<str:action>/", server_views.server_power, name="server_power"),
    path("<int:order_id>/server/reinstall/", server_views.server_reinstall, name="server_reinstall"),
    path("<int:order_id>/server/console/", server_views.server_console, name="server_console"),
    path("<int:order_id>/server/reverse-dns/", server_views.server_reverse_dns, name="server_reverse_dns"),
    path("<int:order_id>/server/usage/", server_views.server_usage, name="server_usage"),
    path("<int:order_id>/auto-renew/", views.order_auto_renew, name="order_auto_renew"),
    path("<int:order_id>/renew/", views.order_renew, name="order_renew"),
    path("<int:order_id>/cancel/", views.order_cancel, name="order_cancel"),
    path("<int:order_id>/cancel/undo/", views.order_cancel_undo, name="order_cancel_undo"),
    path("<int:order_id>/change-plan/", views.order_change_plan, name="order_change_plan"),
    path("<int:order_id>/addons/", views.order_addons, name="order_addons"),
    path("<int:order_id>/change-plan/cancel/", views.order_change_plan_cancel, name="order_change_plan_cancel"),
]
