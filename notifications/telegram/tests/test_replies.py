"""Ticket replies reach Telegram, and a reply in Telegram lands in that ticket only."""
import pytest

from accounts.tests.factories import StaffUserFactory, UserFactory
from notifications.models import EmailOutbox
from notifications.telegram.models import TelegramOutbox, TelegramUpdate
from tickets.models import Ticket
from tickets.services import message_post_staff, ticket_close
from tickets.tests.factories import TicketFactory

from .factories import deliver_pending, link_chat, post_update, update

pytestmark = pytest.mark.django_db



@pytest.fixture
def two_customers(departments, bot_api):
    """Alice (chat 111) and Bob (chat 222), each with a ticket support has answered in Telegram."""
    staff = StaffUserFactory(first_name="Maria")
    alice, bob = UserFactory(), UserFactory()
    link_chat(alice, chat_id=111)
    link_chat(bob, chat_id=222)
    alice_ticket = TicketFactory(created_by=alice, subject="Alice's VPS is down")
    bob_ticket = TicketFactory(created_by=bob, subject="Bob's DNS")
    message_post_staff(ticket=alice_ticket, staff_user=staff, body="Please try a reboot.")
    message_post_staff(ticket=bob_ticket, staff_user=staff, body="Records updated.")
    deliver_pending()
    return alice, bob, alice_ticket, bob_ticket


def bot_message(chat_id: int) -> TelegramOutbox:
    return TelegramOutbox.objects.get(chat_id=chat_id, notification__isnull=False)


def thread(ticket: Ticket) -> list[str]:
    return list(ticket.messages.order_by("pk").values_list("body", flat=True))


def test_a_ticket_reply_reaches_telegram_with_its_reference(two_customers, bot_api):
    alice, _bob, alice_ticket, _ = two_customers
    row = bot_message(111)
    assert row.status == TelegramOutbox.Status.SENT and row.message_id
    assert row.reference == f"ticket:{alice_ticket.pk}"
    sent = next(p for p in bot_api.sent() if p["chat_id"] == 111)
    assert f"#{alice_ticket.pk}" in sent["text"] and "Please try a reboot." in sent["text"]
    assert f"/tickets/{alice_ticket.pk}/" in sent["text"] and "Reply to this message" in sent["text"]


def test_a_reply_lands_in_the_right_ticket_only(client, two_customers, bot_api):
    alice, _bob, alice_ticket, bob_ticket = two_customers
    bob_before = thread(bob_ticket)

    response = post_update(client, update(10, chat_id=111, text="Rebooted, still down.", reply_to=bot_message(111).message_id))
    assert response.json()["outcome"] == "reply_added"

    alice_ticket.refresh_from_db()
    assert thread(alice_ticket)[-1] == "Rebooted, still down."
    last = alice_ticket.messages.latest("pk")
    assert last.author == alice and not last.is_staff
    assert alice_ticket.status == Ticket.Status.CUSTOMER_REPLIED  # the usual status flow
    assert EmailOutbox.objects.filter(dedupe_key=f"ticket:{alice_ticket.pk}:message:{last.pk}:staff").exists()
    assert thread(bob_ticket) == bob_before
    deliver_pending()
    assert bot_api.sent()[-1] == {
        "chat_id": 111, "text": "Your reply was added to the ticket.", "link_preview_options": {"is_disabled": True},
        "reply_parameters": {"message_id": 10, "allow_sending_without_reply": True},
    }


def test_a_reply_to_another_customers_message_is_refused(client, two_customers):
    _alice, _bob, alice_ticket, bob_ticket = two_customers
    before = thread(alice_ticket), thread(bob_ticket)
    # Alice's chat quotes the id of the message sent to Bob's chat: there is no such message in her chat.
    response = post_update(client, update(11, chat_id=111, text="sneaky", reply_to=bot_message(222).message_id))
    assert response.json()["outcome"] == "reply_refused"
    # A message in Alice's chat that claims to be about Bob's ticket: tickets refuses it.
    TelegramOutbox.objects.create(chat_id=111, customer=alice_ticket.customer, text="x", reference=f"ticket:{bob_ticket.pk}",
                                  status="sent", sent_at=alice_ticket.created_at, message_id=9001)
    assert post_update(client, update(12, chat_id=111, text="sneaky", reply_to=9001)).json()["outcome"] == "reply_refused"
    # A message that was sent to this chat for another customer (the chat was linked to Bob then).
    TelegramOutbox.objects.create(chat_id=111, customer=bob_ticket.customer, text="x", reference=f"ticket:{bob_ticket.pk}",
                                  status="sent", sent_at=alice_ticket.created_at, message_id=9002)
    assert post_update(client, update(13, chat_id=111, text="sneaky", reply_to=9002)).json()["outcome"] == "reply_refused"
    assert (thread(alice_ticket), thread(bob_ticket)) == before
    assert TelegramOutbox.objects.filter(text__startswith="Sorry, this message cannot be answered here").count() == 3


def test_a_reply_from_an_unlinked_chat_is_refused_politely(client, two_customers):
    _alice, _bob, alice_ticket, _ = two_customers
    before = thread(alice_ticket)
    outcome = post_update(client, update(20, chat_id=999, text="hi", reply_to=bot_message(111).message_id)).json()["outcome"]
    assert outcome == "unlinked_chat"
    assert thread(alice_ticket) == before
    assert "not linked" in TelegramOutbox.objects.get(chat_id=999).text


def test_a_trusted_user_without_tickets_cannot_reply(client, two_customers):
    alice, _bob, alice_ticket, _ = two_customers
    finance = UserFactory(customer=alice.customer, role="finance")
    link_chat(finance, chat_id=444, kinds=[])
    TelegramOutbox.objects.create(chat_id=444, customer=alice.customer, text="x", reference=f"ticket:{alice_ticket.pk}",
                                  status="sent", sent_at=alice_ticket.created_at, message_id=7)
    before = thread(alice_ticket)
    assert post_update(client, update(30, chat_id=444, text="hi", reply_to=7)).json()["outcome"] == "reply_refused"
    assert thread(alice_ticket) == before


def test_a_reply_to_a_closed_ticket_gets_the_reason(client, two_customers):
    alice, _bob, alice_ticket, _ = two_customers
    ticket_close(ticket=alice_ticket, user=alice)
    before = thread(alice_ticket)
    outcome = post_update(client, update(40, chat_id=111, text="again", reply_to=bot_message(111).message_id)).json()["outcome"]
    assert outcome == "reply_rejected"
    assert thread(alice_ticket) == before
    assert TelegramOutbox.objects.filter(chat_id=111, text__contains="This ticket is closed").exists()
    assert TelegramUpdate.objects.get(update_id=40).outcome == "reply_rejected"


def test_non_text_and_non_reply_messages_get_help(client, two_customers):
    assert post_update(client, update(50, chat_id=111, text="hello")).json()["outcome"] == "not_a_reply"
    photo = update(51, chat_id=111, text="", reply_to=bot_message(111).message_id, photo=[{"file_id": "x"}])
    assert post_update(client, photo).json()["outcome"] == "reply_refused"


def test_a_revoked_trusted_user_can_no_longer_reply(client, two_customers):
    alice, _bob, alice_ticket, _ = two_customers
    technical = UserFactory(customer=alice.customer, role="technical")
    link_chat(technical, chat_id=555)
    TelegramOutbox.objects.create(chat_id=555, customer=alice.customer, text="x", reference=f"ticket:{alice_ticket.pk}",
                                  status="sent", sent_at=alice_ticket.created_at, message_id=8)
    before = thread(alice_ticket)
    technical.is_active = False
    technical.save()
    assert post_update(client, update(60, chat_id=555, text="hi", reply_to=8)).json()["outcome"] == "unlinked_chat"
    assert thread(alice_ticket) == before
    technical.is_active = True
    technical.save()
    assert post_update(client, update(61, chat_id=555, text="hi", reply_to=8)).json()["outcome"] == "reply_added"
    assert thread(alice_ticket) == [*before, "hi"]
