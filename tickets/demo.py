"""Demo tickets: one answered by support (unread), one the customer closed."""
from accounts.models import User

from . import services
from .models import Department


def seed(*, customer, owner, stdout) -> None:
    staff = User.objects.filter(is_staff=True, customer__isnull=True).order_by("pk").first()
    if staff is None:
        return
    if not staff.first_name:
        User.objects.filter(pk=staff.pk).update(first_name="Maria")
        staff.refresh_from_db()
    support = Department.objects.get(slug="support")
    billing = Department.objects.get(slug="billing")

    network = services.ticket_create(
        customer=customer, user=owner, department=support, priority="high",
        subject="Packet loss to my VPS from Frankfurt",
        body="Since this morning I see 5-10% packet loss on the way to my server.\n"
             "mtr from my office shows the loss starting at the second hop inside your network.",
    )
    services.message_post_staff(
        ticket=network, staff_user=staff, is_internal=True,
        body="Upstream in FRA had a flapping port at 09:12; NOC ticket opened.",
    )
    services.message_post_staff(
        ticket=network, staff_user=staff,
        body="Thank you for the report. Our upstream provider replaced a faulty port at 10:40 "
             "and the loss should be gone.\nStatus page: https://status.example.com/\n"
             "Could you run mtr again and confirm?",
    )

    invoice = services.ticket_create(
        customer=customer, user=owner, department=billing, priority="normal",
        subject="VAT number on invoices", body="Please add our VAT number NL123456789B01 to future invoices.",
    )
    services.message_post_staff(
        ticket=invoice, staff_user=staff,
        body="Done: new invoices will carry the VAT number. You can check it under Settings.",
    )
    services.ticket_close(ticket=invoice, user=owner)
    stdout.write("  tickets: 2 demo tickets with staff replies")
