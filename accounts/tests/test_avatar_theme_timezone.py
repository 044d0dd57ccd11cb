import io
import zoneinfo
from datetime import datetime, timezone as dt_timezone

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from PIL import Image

from accounts.models import Customer, User
from accounts.tests.factories import StaffUserFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def private_media(tmp_path, settings):
    settings.PRIVATE_MEDIA_ROOT = tmp_path / "private"


def jpeg_with_exif(size=(800, 600)) -> bytes:
    image = Image.new("RGB", size, (10, 120, 200))
    exif = Image.Exif()
    exif[0x010F] = "SpyCam Inc."  # Make
    exif[0x0110] = "Model X"  # Model
    exif[0x8825] = {2: (52.0, 31.0, 0.0)}  # GPS info: latitude
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", exif=exif)
    return buffer.getvalue()


def upload(client, name, content, content_type="image/jpeg"):
    return client.post(reverse("accounts:settings_avatar"),
                       {"avatar": SimpleUploadedFile(name, content, content_type=content_type)})


def test_a_non_image_renamed_png_is_refused(client):
    user = UserFactory()
    client.force_login(user)
    response = upload(client, "cat.png", b"MZ\x90\x00 this is really an executable" * 20, "image/png")
    assert response.status_code == 200
    assert "not an image we can read" in response.content.decode()
    user.refresh_from_db()
    assert not user.avatar


def test_a_pdf_renamed_png_and_an_oversized_file_are_refused(client, settings):
    user = UserFactory()
    client.force_login(user)
    assert "not an image" in upload(client, "doc.png", b"%PDF-1.7\n%\xe2\xe3\n1 0 obj<<>>endobj").content.decode()
    settings.ACCOUNTS_AVATAR_MAX_BYTES = 1000
    assert "too large" in upload(client, "big.jpg", jpeg_with_exif()).content.decode()
    user.refresh_from_db()
    assert not user.avatar


def test_exif_is_gone_after_upload_and_the_image_is_resized(client):
    original = jpeg_with_exif()
    assert Image.open(io.BytesIO(original)).getexif()[0x010F] == "SpyCam Inc."  # the test can fail
    user = UserFactory()
    client.force_login(user)
    assert upload(client, "me.jpg", original).status_code == 302
    user.refresh_from_db()
    assert user.avatar.name.startswith(f"avatars/{user.pk}/") and user.avatar.name.endswith(".jpg")
    stored = user.avatar.read()
    assert b"SpyCam" not in stored and b"Exif" not in stored
    image = Image.open(io.BytesIO(stored))
    assert image.format == "JPEG" and not image.getexif() and max(image.size) == 256

    response = client.get(reverse("accounts:avatar", args=[user.pk]))
    assert response.status_code == 200 and response["Content-Type"] == "image/jpeg"
    assert b"".join(response.streaming_content) == stored
    assert 'data-testid="nav-avatar"' in client.get("/").content.decode()


def test_transparent_png_stays_png(client):
    user = UserFactory()
    client.force_login(user)
    buffer = io.BytesIO()
    Image.new("RGBA", (50, 50), (0, 0, 0, 0)).save(buffer, format="PNG")
    assert upload(client, "t.png", buffer.getvalue(), "image/png").status_code == 302
    user.refresh_from_db()
    assert Image.open(user.avatar.open("rb")).mode == "RGBA"


def test_avatar_is_private_to_the_customers_users_and_removable(client):
    owner = UserFactory()
    client.force_login(owner)
    upload(client, "me.jpg", jpeg_with_exif())
    owner.refresh_from_db()
    old_path = owner.avatar.path
    url = reverse("accounts:avatar", args=[owner.pk])
    client.force_login(UserFactory(customer=owner.customer, role=User.Role.TECHNICAL))
    assert client.get(url).status_code == 200
    client.force_login(UserFactory())
    assert client.get(url).status_code == 404
    client.logout()
    assert client.get(url).status_code == 302

    client.force_login(owner)
    response = client.post(reverse("accounts:settings_avatar_remove"))
    assert response.status_code == 302
    owner.refresh_from_db()
    assert not owner.avatar and client.get(url).status_code == 404


def test_avatar_file_is_deleted_after_removal_commits(client, django_capture_on_commit_callbacks):
    import os

    owner = UserFactory()
    client.force_login(owner)
    upload(client, "me.jpg", jpeg_with_exif())
    owner.refresh_from_db()
    path = owner.avatar.path
    assert os.path.exists(path)
    with django_capture_on_commit_callbacks(execute=True):
        client.post(reverse("accounts:settings_avatar_remove"))
    assert not os.path.exists(path)


# --- theme ----------------------------------------------------------------------------------------------

def test_theme_toggle_is_remembered_per_user(client):
    user = UserFactory()
    colleague = UserFactory(customer=user.customer, role=User.Role.FINANCE)
    client.force_login(user)
    assert 'data-bs-theme="light"' in client.get("/").content.decode()
    assert client.get(reverse("accounts:theme_set")).status_code == 405  # GET changes nothing
    response = client.post(reverse("accounts:theme_set"), {"theme": "dark", "next": "/billing/"})
    assert response.status_code == 302 and response.url == "/billing/"
    user.refresh_from_db()
    assert user.theme == "dark"
    page = client.get("/").content.decode()
    assert '<html lang="en" data-bs-theme="dark">' in page and 'data-testid="theme-light"' in page
    client.force_login(colleague)
    assert 'data-bs-theme="light"' in client.get("/").content.decode()


def test_theme_rejects_unknown_values_and_foreign_redirects(client):
    user = UserFactory()
    client.force_login(user)
    response = client.post(reverse("accounts:theme_set"), {"theme": "neon", "next": "https://evil.example/"})
    assert response.url == "/"
    user.refresh_from_db()
    assert user.theme == "light"
    staff = StaffUserFactory()
    client.force_login(staff)
    client.post(reverse("accounts:theme_set"), {"theme": "dark"})
    staff.refresh_from_db()
    assert staff.theme == "dark"


# --- time zone --------------------------------------------------------------------------------------------

def preferences(customer, **changes):
    data = {"low_balance_threshold": "0", "auto_renew_default": "on", "site_currency": "EUR", "language": "en",
            "time_zone": customer.timezone}
    data.update(changes)
    return data


def test_time_zone_is_validated_and_saved(client):
    user = UserFactory()
    client.force_login(user)
    url = reverse("accounts:settings_preferences")
    response = client.post(url, preferences(user.customer, time_zone="Mars/Olympus_Mons"))
    assert response.status_code == 200 and "Select a valid choice" in response.content.decode()
    assert Customer.objects.get(pk=user.customer_id).timezone == "UTC"
    assert client.post(url, preferences(user.customer, time_zone="Asia/Tokyo")).status_code == 302
    assert Customer.objects.get(pk=user.customer_id).timezone == "Asia/Tokyo"


def test_dates_are_shown_in_the_customers_time_zone(client):
    from accounts.services.activity import activity_record

    user = UserFactory()
    Customer.objects.filter(pk=user.customer_id).update(timezone="Asia/Tokyo")
    event = activity_record(action="login", customer=user.customer, actor=user, ip="192.0.2.1")
    from accounts.models import ActivityEvent
    ActivityEvent.objects.filter(pk=event.pk).update(created_at=datetime(2026, 3, 1, 23, 30, tzinfo=dt_timezone.utc))
    client.force_login(user)
    page = client.get(reverse("accounts:activity")).content.decode()
    assert "03/02/2026 8:30 a.m." in page  # 23:30 UTC is 08:30 next day in Tokyo
    Customer.objects.filter(pk=user.customer_id).update(timezone="America/New_York")
    page = client.get(reverse("accounts:activity")).content.decode()
    assert "03/01/2026 6:30 p.m." in page


def test_the_time_zone_does_not_leak_into_the_next_request(client):
    from django.utils import timezone

    user = UserFactory()
    Customer.objects.filter(pk=user.customer_id).update(timezone="Asia/Tokyo")
    client.force_login(user)
    client.get("/")
    assert timezone.get_current_timezone() == zoneinfo.ZoneInfo("UTC")


def test_security_notices_state_the_time_in_the_customers_zone():
    from accounts.services.security import password_change_record
    from notifications.models import Notification

    user = UserFactory()
    Customer.objects.filter(pk=user.customer_id).update(timezone="Asia/Tokyo")
    user.customer.refresh_from_db()
    password_change_record(user=user, ip="192.0.2.1")
    notice = Notification.objects.get(customer=user.customer, kind="security_change")
    assert notice.context["when"].endswith("JST")


def test_previous_login_message_uses_the_customers_zone_right_at_login(client):
    from accounts.models import ActivityEvent
    from accounts.tests.factories import DEFAULT_PASSWORD

    user = UserFactory(username="tokyo")
    Customer.objects.filter(pk=user.customer_id).update(timezone="Asia/Tokyo", show_last_login=True)
    event = ActivityEvent.objects.create(action="login", customer=user.customer, actor=user, ip="192.0.2.5")
    ActivityEvent.objects.filter(pk=event.pk).update(created_at=datetime(2026, 3, 1, 23, 30, tzinfo=dt_timezone.utc))
    response = client.post(reverse("accounts:login"), {"username": "tokyo", "password": DEFAULT_PASSWORD}, follow=True)
    messages = [str(m) for m in response.context["messages"]]
    assert any("03/02/2026 8:30 a.m." in m and "192.0.2.5" in m for m in messages), messages
