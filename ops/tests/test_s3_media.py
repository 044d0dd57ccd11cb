"""Shared media (MEDIA_STORAGE=s3) against a real S3-compatible server on loopback (moto's server mode):
ticket attachments, avatars and data exports are stored in the bucket, never on local disk, and are
served only through the access-checked views (streamed by the app: private files have no URL)."""
import importlib
import io
import zipfile

import boto3
import pytest
from django.apps import apps
from django.core.files.base import ContentFile
from django.test import Client
from django.urls import reverse

from accounts.models import DataExport
from accounts.services.data_export import data_export_build, data_export_request, data_exports_sweep
from accounts.tests.factories import UserFactory
from tickets import services as ticket_services
from tickets.tests.factories import PDF_BYTES, TicketFactory, upload
from tickets.uploads import check_upload
from core.tests.net import free_port

BUCKET = "portal-media-test"
pytestmark = pytest.mark.django_db


@pytest.fixture(scope="module")
def s3_server():
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def s3_media(s3_server, settings, tmp_path):
    """Point the portal's private storage at a fresh bucket; the local root must stay empty."""
    client = boto3.client("s3", endpoint_url=s3_server, region_name="eu-central-1",
                          aws_access_key_id="test-key", aws_secret_access_key="test-secret")
    client.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "eu-central-1"})
    settings.MEDIA_STORAGE = "s3"
    settings.MEDIA_S3_BUCKET = BUCKET
    settings.MEDIA_S3_ENDPOINT_URL = s3_server
    settings.MEDIA_S3_REGION = "eu-central-1"
    settings.MEDIA_S3_ACCESS_KEY_ID = "test-key"
    settings.MEDIA_S3_SECRET_ACCESS_KEY = "test-secret"
    settings.PRIVATE_MEDIA_ROOT = tmp_path / "private"
    yield client
    for item in client.list_objects_v2(Bucket=BUCKET).get("Contents", []):
        client.delete_object(Bucket=BUCKET, Key=item["Key"])
    client.delete_bucket(Bucket=BUCKET)
    assert not (tmp_path / "private").exists(), "a private file was written to local disk"


@pytest.fixture(autouse=True)
def default_departments(db):
    importlib.import_module("tickets.migrations.0002_default_departments_and_ticket_numbers").create_departments(apps, None)


def keys(client) -> list[str]:
    return sorted(item["Key"] for item in client.list_objects_v2(Bucket=BUCKET).get("Contents", []))


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_ticket_attachment_is_stored_in_the_bucket_and_downloads_only_for_its_customer(s3_media):
    owner = UserFactory()
    ticket = TicketFactory(created_by=owner)
    message = ticket_services.message_post_customer(
        ticket=ticket, user=owner, body="invoice scan", files=[check_upload(upload("scan.pdf", PDF_BYTES, "application/pdf"))])
    attachment = message.attachments.get()
    [key] = keys(s3_media)
    assert key.startswith("private/") and key.endswith(attachment.file.name.rsplit("/", 1)[-1])
    assert s3_media.get_object(Bucket=BUCKET, Key=key)["Body"].read() == PDF_BYTES
    assert s3_media.get_object_acl(Bucket=BUCKET, Key=key)["Grants"][0]["Grantee"].get("URI") is None  # not public

    url = reverse("tickets:attachment", args=[attachment.pk])
    response = logged_in(owner).get(url)
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == PDF_BYTES
    assert response["Content-Disposition"] == 'attachment; filename="scan.pdf"'
    assert logged_in(UserFactory()).get(url).status_code == 404
    assert Client().get(url).status_code == 302  # anonymous: to the login page
    with pytest.raises(ValueError):
        attachment.file.url  # no public or pre-signed URL is ever handed out


def test_same_name_never_overwrites_another_customers_file(s3_media):
    from accounts.models import private_storage

    storage = private_storage()
    first = storage.save("tickets/same.txt", ContentFile(b"one"))
    second = storage.save("tickets/same.txt", ContentFile(b"two"))
    assert first != second
    assert storage.open(first).read() == b"one" and storage.open(second).read() == b"two"
    storage.delete(first)
    assert not storage.exists(first) and storage.exists(second)


def test_data_export_built_by_a_worker_downloads_from_the_bucket(s3_media, django_capture_on_commit_callbacks, monkeypatch):
    from accounts import tasks

    monkeypatch.setattr(tasks.data_export_build_task, "apply_async", lambda kwargs, **options: None)
    owner = UserFactory(first_name="Alice")
    export = data_export_request(customer=owner.customer, user=owner)
    data_export_build(export_id=export.pk)  # what the worker host runs
    export.refresh_from_db()
    assert export.status == DataExport.Status.READY
    assert any(key.endswith(".zip") for key in keys(s3_media))

    url = reverse("accounts:data_export_download", args=[export.pk])
    response = logged_in(owner).get(url)
    assert response.status_code == 200
    archive = zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))
    assert "Alice" in archive.read("users.json").decode("utf-8-sig")
    assert logged_in(UserFactory()).get(url).status_code == 404

    # When the link expires the sweeper deletes the object from the bucket (after commit).
    with django_capture_on_commit_callbacks(execute=True):
        assert data_exports_sweep(now=export.expires_at)["expired"] == 1
    assert not any(key.endswith(".zip") for key in keys(s3_media))
