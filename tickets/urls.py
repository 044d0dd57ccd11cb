from django.urls import path

from . import views

app_name = "tickets"

urlpatterns = [
    path("", views.ticket_list, name="list"),
    path("new/", views.ticket_create, name="create"),
    path("<int:ticket_id>/", views.ticket_detail, name="detail"),
    path("<int:ticket_id>/reply/", views.ticket_reply, name="reply"),
    path("<int:ticket_id>/close/", views.ticket_close, name="close"),
    path("<int:ticket_id>/reopen/", views.ticket_reopen, name="reopen"),
    path("<int:ticket_id>/seen/", views.ticket_seen, name="seen"),
    path("attachments/<int:attachment_id>/", views.attachment_download, name="attachment"),
]
