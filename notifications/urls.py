from django.urls import path

from . import views

app_name = "notifications"

urlpatterns = [
    path("", views.inbox, name="inbox"),
    path("<int:notification_id>/", views.notification_detail, name="detail"),
    path("<int:notification_id>/read/", views.notification_read, name="read"),
    path("read-all/", views.mark_all_read, name="read_all"),
    path("subscriptions/", views.subscriptions, name="subscriptions"),
]
