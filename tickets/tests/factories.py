import factory
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone

from accounts.tests.factories import UserFactory
from tickets.models import Department, Message, Ticket

PNG_BYTES = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + b"\x00" * 64
PDF_BYTES = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n"
ELF_BYTES = b"\x7fELF\x02\x01\x01\x00" + b"\x00" * 120
MZ_BYTES = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff" + b"\x00" * 100


def upload(name: str, content: bytes = PNG_BYTES, content_type: str = "image/png") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, content, content_type=content_type)


def department(slug: str = "support") -> Department:
    return Department.objects.get(slug=slug)


class TicketFactory(factory.django.DjangoModelFactory):
    """A ticket row with its first customer message (bypasses the rate limit; for list/data tests)."""

    class Meta:
        model = Ticket
        skip_postgeneration_save = True

    customer = factory.LazyAttribute(lambda t: t.created_by.customer)
    created_by = factory.SubFactory(UserFactory)
    subject = factory.Sequence(lambda n: f"Server problem {n}")
    department = factory.LazyFunction(department)
    priority = Ticket.Priority.NORMAL
    status = Ticket.Status.OPEN
    last_reply_at = factory.LazyFunction(timezone.now)
    last_reply_by = factory.SelfAttribute("created_by")
    status_changed_at = factory.LazyFunction(timezone.now)
    awaiting_staff_since = factory.LazyFunction(timezone.now)

    @factory.post_generation
    def first_message(obj, create, extracted, **kwargs):
        if create:
            Message.objects.create(ticket=obj, author=obj.created_by, body=extracted or "It does not work.")
