"""What each endpoint does: the pages' services through the API, pagination, errors, schema."""
from decimal import Decimal

import pytest
import time_machine
import yaml
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from drf_spectacular.validation import validate_schema
from rest_framework.test import APIClient

from billing.audit import audit
from billing.models import Invoice
from billing.selectors import balance_of
from notifications.services import notify
from orders.models import Order
from tickets.models import Department, Ticket

pytestmark = pytest.mark.django_db


def test_balance_and_account(owner, key_client, fund):
    fund(owner.customer, "42.50")
    client = key_client(owner)
    assert client.get("/api/v1/balance").json()["balance"] == {"amount": "42.50", "currency": "EUR"}
    account = client.get("/api/v1/account").json()
    assert account["role"] == "owner" and "billing:write" in account["key_scopes"]


def test_renew_from_balance_uses_the_orders_service(owner, key_client, place, fund):
    customer = owner.customer
    fund(customer, "30.00")
    order = place(customer).order
    response = key_client(owner).post(f"/api/v1/services/{order.pk}/renew", {"periods": 1, "period": 2}, format="json")
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["paid"] is True and body["service"]["current_period"] == 2
    assert Invoice.objects.get(pk=body["invoice_id"]).status == Invoice.Status.PAID
    assert balance_of(customer) == Decimal("10.00")
    assert audit() == {key: [] for key in audit()}


def test_renew_refusal_is_a_translated_400_and_changes_nothing(owner, key_client, place, fund):
    fund(owner.customer, "30.00")
    order = place(owner.customer).order
    client = key_client(owner)
    bad = client.post(f"/api/v1/services/{order.pk}/renew", {"periods": 0}, format="json")
    assert bad.status_code == 400
    assert bad.json()["error"]["type"] == "invalid_request" and "periods" in bad.json()["error"]["fields"]
    assert balance_of(owner.customer) == Decimal("20.00")


def test_pay_invoice_from_balance(owner, key_client, place, fund):
    customer = owner.customer
    placed = place(customer)
    assert placed.invoice.status == Invoice.Status.UNPAID
    client = key_client(owner)
    short = client.post(f"/api/v1/invoices/{placed.invoice.pk}/pay")
    assert short.status_code == 400
    assert short.json()["error"] == {"type": "invalid_request", "code": "insufficient_balance",
                                     "message": "Your balance does not cover this invoice."}
    fund(customer, "10.00")
    paid = client.post(f"/api/v1/invoices/{placed.invoice.pk}/pay")
    assert paid.status_code == 200 and paid.json()["status"] == "paid" and paid.json()["amount_due"] == "0.00"
    assert Order.objects.get(pk=placed.order.pk).status == Order.Status.ACTIVE
    detail = client.get(f"/api/v1/invoices/{placed.invoice.pk}").json()
    assert detail["lines"][0]["amount"] == "10.00" and detail["currency"] == "EUR"
    pdf = client.get(f"/api/v1/invoices/{placed.invoice.pk}/pdf")
    assert pdf.status_code == 200 and pdf["Content-Type"] == "application/pdf" and pdf.content.startswith(b"%PDF")


def test_invoice_filters(owner, key_client, place, fund):
    fund(owner.customer, "10.00")
    paid = place(owner.customer).invoice
    unpaid = place(owner.customer).invoice
    client = key_client(owner)
    assert [i["id"] for i in client.get("/api/v1/invoices?status=unpaid").json()["results"]] == [unpaid.pk]
    assert [i["id"] for i in client.get("/api/v1/invoices?status=paid").json()["results"]] == [paid.pk]
    assert [i["id"] for i in client.get(f"/api/v1/invoices?q={paid.number}").json()["results"]] == [paid.pk]


def test_change_plan_lists_quotes_and_schedules_a_downgrade(owner, key_client, place, fund):
    from orders.tests.factories import PlanFactory

    fund(owner.customer, "30.00")
    big = PlanFactory(prices={(1, "EUR"): "20.00"})
    order = place(owner.customer, plan=big).order
    small = PlanFactory(product_type=big.product_type, prices={(1, "EUR"): "5.00"})
    client = key_client(owner)
    plans = client.get(f"/api/v1/services/{order.pk}/plans").json()
    assert [(q["plan"]["id"], q["is_upgrade"]) for q in plans] == [(small.pk, False)]
    response = client.post(f"/api/v1/services/{order.pk}/change-plan", {"plan": small.pk}, format="json")
    assert response.status_code == 200
    assert response.json()["scheduled"] is True and response.json()["service"]["scheduled_plan"]["id"] == small.pk


def test_cursor_pagination_walks_every_row_once(owner, key_client):
    for n in range(7):
        notify(customer=owner.customer, kind="low_balance", context={"balance": f"{n}.00 EUR", "threshold": "9.00 EUR"})
    client = key_client(owner)
    seen, url = [], "/api/v1/notifications?limit=3"
    while url:
        page = client.get(url).json()
        seen += [row["id"] for row in page["results"]]
        url = page["next"]
    assert len(seen) == 7 and seen == sorted(seen, reverse=True)


def test_ticket_create_reply_and_attachment(owner, key_client, departments):
    client = key_client(owner)
    department = Department.objects.filter(is_active=True).first()
    created = client.post("/api/v1/tickets", {
        "department": department.pk, "subject": "Server down", "body": "It does not answer.",
        "attachments": [SimpleUploadedFile("boot.log", b"kernel panic", content_type="text/plain")]}, format="multipart")
    assert created.status_code == 201, created.json()
    ticket = created.json()
    attachment = ticket["messages"][0]["attachments"][0]
    assert attachment["name"] == "boot.log" and attachment["size"] == 12
    download = client.get(f"/api/v1/attachments/{attachment['id']}")
    assert download.status_code == 200 and b"".join(download.streaming_content) == b"kernel panic"
    assert download["Content-Disposition"].startswith("attachment")
    reply = client.post(f"/api/v1/tickets/{ticket['number']}/replies", {"body": "Any news?"}, format="json")
    assert reply.status_code == 201 and reply.json()["body"] == "Any news?"
    assert Ticket.objects.get(pk=ticket["number"]).messages.count() == 2
    listed = client.get("/api/v1/tickets").json()["results"]
    assert [t["number"] for t in listed] == [ticket["number"]]


def test_ticket_refused_upload_is_a_field_error(owner, key_client, departments):
    department = Department.objects.filter(is_active=True).first()
    response = key_client(owner).post("/api/v1/tickets", {
        "department": department.pk, "subject": "x", "body": "y",
        "attachments": [SimpleUploadedFile("evil.exe", b"MZ\x90\x00binary", content_type="application/octet-stream")]},
        format="multipart")
    assert response.status_code == 400 and "attachments" in response.json()["error"]["fields"]
    assert not Ticket.objects.exists()


def test_notification_read(owner, key_client):
    notification = notify(customer=owner.customer, kind="low_balance", context={"balance": "1.00 EUR", "threshold": "5.00 EUR"})
    client = key_client(owner, scopes=["account:read"])
    assert client.get("/api/v1/notifications?unread=true").json()["results"][0]["id"] == notification.pk
    assert client.get(f"/api/v1/notifications/{notification.pk}").json()["read_at"] is None  # GET changes nothing
    assert client.post(f"/api/v1/notifications/{notification.pk}/read").json()["read_at"] is not None
    assert client.get("/api/v1/notifications?unread=true").json()["results"] == []
    from accounts.models import ActivityEvent

    assert not ActivityEvent.objects.filter(action="api_request").exists()  # reading is not logged as a change


def test_schema_is_valid_openapi_and_covers_every_endpoint(tmp_path):
    target = tmp_path / "schema.yaml"
    call_command("spectacular", "--file", str(target), "--validate", "--fail-on-warn")
    schema = yaml.safe_load(target.read_text())
    validate_schema(schema)
    assert "/api/v1/services/{service_id}/renew" in schema["paths"]
    served = APIClient().get("/api/schema/?format=json")
    assert served.status_code == 200 and served.json()["paths"].keys() == schema["paths"].keys()


def test_reference_page_is_served_without_a_cdn():
    page = APIClient().get("/api/docs/").content.decode()
    assert "/static/drf_spectacular_sidecar/redoc/" in page
    assert "https://" not in page and "http://" not in page


@time_machine.travel("2026-06-01 12:00:00+00:00", tick=False)  # last_used_at is written once, not again a minute later
@pytest.mark.parametrize("url", ["/api/v1/services", "/api/v1/invoices", "/api/v1/payments", "/api/v1/tickets?status=all"])
def test_lists_run_a_fixed_number_of_queries(owner, key_client, place, fund, departments, url):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from tickets import services as ticket_services

    client = key_client(owner)
    department = Department.objects.filter(is_active=True).first()

    def add(n):
        for _ in range(n):
            fund(owner.customer, "10.00")
            place(owner.customer)
            ticket_services.ticket_create(customer=owner.customer, user=owner, department=department, subject="s",
                                          priority="normal", body="b")

    def count():
        with CaptureQueriesContext(connection) as queries:
            response = client.get(url)
        assert response.status_code == 200 and response.json()["results"]
        return len(queries)

    add(2)
    count()  # the key's first use writes last_used_at (then at most once a minute)
    few = count()
    add(3)
    assert count() == few
