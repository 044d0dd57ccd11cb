"""Idempotency-Key: repeats return the stored response, another body is 422, parallel repeats act once."""
from datetime import timedelta
from decimal import Decimal

import pytest
import time_machine
from django.utils import timezone
from rest_framework.test import APIClient

from api.idempotency import idempotency_purge
from api.models import IdempotentRequest
from billing.selectors import balance_of
from billing.tests.concurrency import run_concurrently
from orders.models import OrderRenewal
from tickets.models import Department, Ticket


@pytest.mark.django_db
def test_sequential_repeat_returns_the_stored_response_and_renews_once(owner, key_client, place, fund):
    fund(owner.customer, "50.00")
    order = place(owner.customer).order
    client = key_client(owner)
    url = f"/api/v1/services/{order.pk}/renew"
    first = client.post(url, {"periods": 1}, format="json", HTTP_IDEMPOTENCY_KEY="renew-1")
    again = client.post(url, {"periods": 1}, format="json", HTTP_IDEMPOTENCY_KEY="renew-1")
    assert first.status_code == again.status_code == 200
    assert again.json() == first.json() and again["Idempotent-Replayed"] == "true"
    assert OrderRenewal.objects.filter(order=order).count() == 1
    assert balance_of(owner.customer) == Decimal("30.00")


@pytest.mark.django_db
def test_same_key_with_another_body_is_422(owner, key_client, departments):
    client = key_client(owner)
    department = Department.objects.filter(is_active=True).first()
    body = {"department": department.pk, "subject": "Disk", "body": "Full"}
    assert client.post("/api/v1/tickets", body, format="json", HTTP_IDEMPOTENCY_KEY="t1").status_code == 201
    other = client.post("/api/v1/tickets", {**body, "body": "Empty"}, format="json", HTTP_IDEMPOTENCY_KEY="t1")
    assert other.status_code == 422
    assert other.json()["error"]["code"] == "idempotency_key_reused"
    assert Ticket.objects.count() == 1


@pytest.mark.django_db
def test_keys_belong_to_one_api_key_and_expire_after_a_day(owner, key_client, departments):
    department = Department.objects.filter(is_active=True).first()
    body = {"department": department.pk, "subject": "Disk", "body": "Full"}
    first, second = key_client(owner), key_client(owner)
    with time_machine.travel(timezone.now(), tick=False) as clock:
        assert first.post("/api/v1/tickets", body, format="json", HTTP_IDEMPOTENCY_KEY="k").status_code == 201
        assert second.post("/api/v1/tickets", body, format="json", HTTP_IDEMPOTENCY_KEY="k").status_code == 201
        assert Ticket.objects.count() == 2
        clock.shift(timedelta(hours=24, seconds=1))
        assert idempotency_purge() == 2
        assert first.post("/api/v1/tickets", body, format="json", HTTP_IDEMPOTENCY_KEY="k").status_code == 201
    assert Ticket.objects.count() == 3


@pytest.mark.django_db
def test_refused_request_is_not_stored_so_the_key_can_be_retried(owner, key_client, place, fund):
    placed = place(owner.customer)
    client = key_client(owner)
    url = f"/api/v1/invoices/{placed.invoice.pk}/pay"
    assert client.post(url, HTTP_IDEMPOTENCY_KEY="pay-1").status_code == 400
    assert not IdempotentRequest.objects.exists()
    fund(owner.customer, "10.00")
    assert client.post(url, HTTP_IDEMPOTENCY_KEY="pay-1").json()["status"] == "paid"


@pytest.mark.django_db(transaction=True)
def test_parallel_repeats_renew_once(owner, key_client, place, fund):
    fund(owner.customer, "100.00")
    order = place(owner.customer).order
    token = key_client(owner).token
    url = f"/api/v1/services/{order.pk}/renew"

    def call():
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
        return client.post(url, {"periods": 1}, format="json", HTTP_IDEMPOTENCY_KEY="same").status_code

    results, errors = run_concurrently(call, [()] * 4)
    assert errors == []
    assert results.count(200) >= 1 and set(results) <= {200, 409}
    assert OrderRenewal.objects.filter(order=order).count() == 1
    assert balance_of(owner.customer) == Decimal("80.00")
