"""Uploads: refused with a message and nothing saved when oversized, too many, wrong content or badly named."""
import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils.datastructures import MultiValueDict

from orders.models import Order
from tickets.forms import ReplyForm, TicketCreateForm
from tickets.models import Attachment, Message, Ticket
from tickets.selectors import departments_open
from tickets.tests.conftest import stored_files
from tickets.tests.factories import ELF_BYTES, MZ_BYTES, PDF_BYTES, PNG_BYTES, TicketFactory, department, upload
from tickets.uploads import check_upload, clean_file_name, sniff_content_type

pytestmark = pytest.mark.django_db


def new_ticket_data(**extra):
    return {"department": department().pk, "subject": "Disk errors", "priority": "normal",
            "body": "See the attached log.", **extra}


def assert_nothing_saved(private_media):
    assert Ticket.objects.count() == 0
    assert Message.objects.count() == 0
    assert Attachment.objects.count() == 0
    assert stored_files(private_media) == []


@pytest.mark.parametrize("head, expected", [
    (PNG_BYTES, "image/png"),
    (b"\xff\xd8\xff\xe0\x00\x10JFIF", "image/jpeg"),
    (b"GIF89a\x01\x00", "image/gif"),
    (PDF_BYTES, "application/pdf"),
    (b"PK\x03\x04\x14\x00", "application/zip"),
    ("kernel: EXT4-fs error — ошибка\n".encode(), "text/plain"),
    (ELF_BYTES, None),
    (MZ_BYTES, None),
    (b"\xcf\xfa\xed\xfe\x07\x00\x00\x01", None),
    (b"\x00\x01\x02binary", None),
    (b"\xff\xfe\xfd not utf-8", None),
])
def test_content_sniffing(head, expected):
    assert sniff_content_type(head) == expected


def test_accepts_real_files_and_tames_names():
    checked = check_upload(upload("Screen shot (1).PNG"))
    assert (checked.name, checked.content_type) == ("Screen shot (1).png", "image/png")
    assert check_upload(upload("server.log", b"line 1\nline 2\n", "text/plain")).content_type == "text/plain"
    assert clean_file_name("rapport d'été;rm -rf.pdf") == "rapport d_été_rm -rf.pdf"


@pytest.mark.parametrize("name", [
    "../../etc/cron.d/evil.png", "..\\..\\windows\\evil.png", "/etc/passwd", "C:evil.png", ".htaccess", "..",
    "evil\x00.png", "new\nline.png",
])
def test_path_traversal_and_hidden_names_are_refused(name):
    with pytest.raises(ValidationError, match="is not allowed"):
        clean_file_name(name)


@pytest.mark.parametrize("name, content, message", [
    ("photo.png", ELF_BYTES, "executable program"),
    ("photo.png", MZ_BYTES, "executable program"),
    ("setup.txt", MZ_BYTES, "executable program"),
    ("invoice.png", PDF_BYTES, "does not match its extension"),
    ("notes.exe", b"plain text", "does not match its extension"),
    ("blob.png", b"\x00\x00\x00binary", "not an accepted file type"),
])
def test_wrong_content_refused_over_http_and_nothing_saved(owner_client, private_media, name, content, message):
    response = owner_client.post(reverse("tickets:create"),
                                 new_ticket_data(attachments=[upload(name, content)]))
    assert response.status_code == 200
    assert message in response.content.decode()
    assert_nothing_saved(private_media)


def test_oversized_file_refused(owner_client, private_media, settings):
    settings.TICKETS_ATTACHMENT_MAX_BYTES = 1024
    big = upload("big.png", PNG_BYTES + b"\x00" * 2000)
    response = owner_client.post(reverse("tickets:create"), new_ticket_data(attachments=[big]))
    assert "the limit is 1.0\xa0KB per file" in response.content.decode()
    assert_nothing_saved(private_media)


def test_too_many_files_refused(owner_client, private_media, settings):
    settings.TICKETS_ATTACHMENTS_PER_MESSAGE = 2
    files = [upload(f"shot{i}.png") for i in range(3)]
    response = owner_client.post(reverse("tickets:create"), new_ticket_data(attachments=files))
    assert "at most 2 files" in response.content.decode()
    assert_nothing_saved(private_media)


def test_one_bad_file_refuses_the_whole_reply(owner, owner_client, private_media):
    ticket = TicketFactory(created_by=owner)
    response = owner_client.post(reverse("tickets:reply", args=[ticket.pk]), {
        "body": "two files", "attachments": [upload("ok.png"), upload("virus.png", ELF_BYTES)],
    })
    assert response.status_code == 400
    assert "executable program" in response.content.decode()
    assert ticket.messages.count() == 1 and Attachment.objects.count() == 0
    assert stored_files(private_media) == []


def test_path_traversal_name_refused_by_the_form_and_nothing_saved(private_media):
    # Django's multipart parser already strips directories from HTTP uploads; the form refuses what remains
    # (for files that arrive another way, e.g. the admin or future API).
    files = MultiValueDict({"attachments": [upload("..\\..\\evil.png")]})
    form = TicketCreateForm(new_ticket_data(), files, departments=departments_open(), orders=Order.objects.none())
    assert not form.is_valid()
    assert "is not allowed" in form.errors["attachments"][0]
    reply = ReplyForm({"body": "x"}, MultiValueDict({"attachments": [upload(".hidden.png")]}))
    assert not reply.is_valid()
    assert_nothing_saved(private_media)


def test_http_upload_named_with_a_path_is_stored_inside_the_private_root(owner_client, private_media):
    response = owner_client.post(reverse("tickets:create"),
                                 new_ticket_data(attachments=[upload("../../../../tmp/evil.png")]))
    assert response.status_code == 302
    attachment = Attachment.objects.get()
    assert attachment.original_name == "evil.png"
    [stored] = stored_files(private_media)
    assert stored.resolve().is_relative_to(private_media.resolve())
    assert "evil" not in stored.name  # the disk name is random; the customer's name is only displayed


def test_valid_files_are_saved_outside_static_root(owner_client, private_media, settings):
    response = owner_client.post(reverse("tickets:create"), new_ticket_data(
        attachments=[upload("screen.png"), upload("dmesg.log", b"[ 1.0] ok\n", "text/plain")]))
    assert response.status_code == 302
    assert sorted(Attachment.objects.values_list("original_name", "content_type")) == [
        ("dmesg.log", "text/plain"), ("screen.png", "image/png")]
    files = stored_files(private_media)
    assert len(files) == 2
    assert not any(path.resolve().is_relative_to(settings.STATIC_ROOT) for path in files)
