"""Who may call what: the same IDOR and role matrix as the pages, plus the key's own limits."""
from datetime import timedelta

import pytest
import time_machine
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.models import ActivityEvent, User
from api.models import ApiKey
from api.services import api_key_create, api_key_revoke
from notifications.services import notify
from tickets import services as ticket_services
from tickets.models import Department
from tickets.uploads import check_upload

from .conftest import trusted

pytestmark = pytest.mark.django_db


@pytest.fixture
def foreign(other_owner, place, fund, departments):
    """Another customer's service, invoice, payment, ticket, attachment and notification."""
    customer = other_owner.customer
    fund(customer, "100.00")
    placed = place(customer)
    ticket = ticket_services.ticket_create(
        customer=customer, user=other_owner, department=Department.objects.filter(is_active=True).first(),
        subject="Theirs", priority="normal", body="Their problem",
        files=[check_upload(SimpleUploadedFile("log.txt", b"hello", content_type="text/plain"))])
    notification = notify(customer=customer, kind="low_balance", context={"balance": "1.00 EUR", "threshold": "5.00 EUR"})
    return {"service": placed.order.pk, "invoice": placed.invoice.pk, "payment": customer.payments.get().pk,
            "ticket": ticket.pk, "attachment": ticket.messages.get().attachments.get().pk, "notification": notification.pk}


FOREIGN_CALLS = [
    ("get", "/api/v1/services/{service}"),
    ("post", "/api/v1/services/{service}/renew"),
    ("get", "/api/v1/services/{service}/plans"),
    ("post", "/api/v1/services/{service}/change-plan"),
    ("post", "/api/v1/services/{service}/cancel"),
    ("post", "/api/v1/services/{service}/power"),
    ("get", "/api/v1/invoices/{invoice}"),
    ("get", "/api/v1/invoices/{invoice}/pdf"),
    ("post", "/api/v1/invoices/{invoice}/pay"),
    ("get", "/api/v1/payments/{payment}"),
    ("get", "/api/v1/tickets/{ticket}"),
    ("post", "/api/v1/tickets/{ticket}/replies"),
    ("get", "/api/v1/attachments/{attachment}"),
    ("get", "/api/v1/notifications/{notification}"),
    ("post", "/api/v1/notifications/{notification}/read"),
]


@pytest.mark.parametrize(("method", "url"), FOREIGN_CALLS)
def test_another_customers_object_is_404_and_untouched(owner, key_client, foreign, method, url):
    client = key_client(owner)
    response = getattr(client, method)(url.format(**foreign), {"periods": 1, "body": "mine now", "immediately": True}, format="json")
    assert response.status_code == 404
    assert response.json()["error"]["type"] == "not_found"
    assert not ActivityEvent.objects.filter(actor=owner, action="api_request").exists()


ROLE_MATRIX = [
    # (role, method, url, expected status)
    (User.Role.FINANCE, "get", "/api/v1/invoices", 200),
    (User.Role.FINANCE, "get", "/api/v1/balance", 200),
    (User.Role.FINANCE, "get", "/api/v1/services", 403),
    (User.Role.FINANCE, "get", "/api/v1/tickets", 403),
    (User.Role.FINANCE, "get", "/api/v1/notifications", 200),
    (User.Role.TECHNICAL, "get", "/api/v1/services", 200),
    (User.Role.TECHNICAL, "get", "/api/v1/tickets", 200),
    (User.Role.TECHNICAL, "get", "/api/v1/invoices", 403),
    (User.Role.TECHNICAL, "get", "/api/v1/balance", 403),
    (User.Role.TECHNICAL, "get", "/api/v1/payments", 403),
]


@pytest.mark.parametrize(("role", "method", "url", "expected"), ROLE_MATRIX)
def test_role_matrix(customer, key_client, departments, role, method, url, expected):
    response = getattr(key_client(trusted(customer, role)), method)(url)
    assert response.status_code == expected
    if expected == 403:
        assert response.json()["error"] == {"type": "permission_denied", "code": "permission_denied",
                                             "message": "Your role does not give access to this section."}


def test_technical_user_cannot_renew_but_can_cancel(customer, key_client, place, fund):
    fund(customer, "50.00")
    order = place(customer).order
    client = key_client(trusted(customer, User.Role.TECHNICAL))
    assert client.post(f"/api/v1/services/{order.pk}/renew", {"periods": 1}, format="json").status_code == 403
    response = client.post(f"/api/v1/services/{order.pk}/cancel", {"immediately": False}, format="json")
    assert response.status_code == 200
    assert response.json()["cancel_at_period_end"] is True


def test_read_scope_cannot_write(owner, key_client, place, fund):
    fund(owner.customer, "50.00")
    order = place(owner.customer).order
    client = key_client(owner, scopes=["services:read", "billing:read"])
    assert client.get(f"/api/v1/services/{order.pk}").status_code == 200
    response = client.post(f"/api/v1/services/{order.pk}/cancel", {}, format="json")
    assert response.status_code == 403
    assert response.json()["error"]["message"] == "This API key lacks the services:write scope."
    order.refresh_from_db()
    assert not order.cancel_at_period_end


def test_key_cannot_hold_scopes_beyond_the_role(customer):
    finance = trusted(customer, User.Role.FINANCE)
    with pytest.raises(Exception) as error:
        api_key_create(user=finance, name="x", scopes=["billing:read", "services:write"], expires_at=None)
    assert "services:write" in str(error.value)
    assert not ApiKey.objects.exists()


def test_narrowed_role_narrows_existing_keys(customer, key_client):
    user = trusted(customer, User.Role.OWNER)
    client = key_client(user)
    assert client.get("/api/v1/services").status_code == 200
    User.objects.filter(pk=user.pk).update(role=User.Role.FINANCE)
    assert client.get("/api/v1/services").status_code == 403


@pytest.mark.parametrize("header", ["", "Bearer nope", "Bearer hp_abc_def", "Token whatever"])
def test_missing_or_wrong_key_is_401(header, owner):
    client = APIClient()
    if header:
        client.credentials(HTTP_AUTHORIZATION=header)
    response = client.get("/api/v1/account")
    assert response.status_code == 401
    assert response.json()["error"]["type"] == "authentication_failed"
    assert response["WWW-Authenticate"] == "Bearer"


def test_expired_revoked_and_deactivated_keys_stop_working(owner, key_client):
    expired, revoked, deactivated = key_client(owner), key_client(owner), key_client(trusted(owner.customer, User.Role.TECHNICAL))
    ApiKey.objects.filter(pk=expired.api_key.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    api_key_revoke(key=revoked.api_key, actor=owner)
    User.objects.filter(pk=deactivated.api_key.user_id).update(is_active=False)
    for client in (expired, revoked, deactivated):
        assert client.get("/api/v1/account").status_code == 401


def test_token_is_stored_hashed_and_last_use_recorded(owner, key_client):
    client = key_client(owner)
    key = ApiKey.objects.get()
    assert client.token not in key.secret_hash and key.prefix in client.token
    assert key.last_used_at is None
    response = client.get("/api/v1/account", REMOTE_ADDR="203.0.113.7")
    assert response.status_code == 200
    assert response.json()["client_id"] == owner.customer_id
    key.refresh_from_db()
    assert key.last_used_at is not None and key.last_used_ip == "203.0.113.7"


def test_customer_and_key_ip_restrictions_apply(owner, key_client):
    restricted = key_client(owner, allowed_ips="198.51.100.0/24")
    assert restricted.get("/api/v1/account", REMOTE_ADDR="198.51.100.9").status_code == 200
    assert restricted.get("/api/v1/account", REMOTE_ADDR="203.0.113.7").status_code == 403
    open_key = key_client(owner)
    owner.customer.ip_allowlist = "192.0.2.1"
    owner.customer.save(update_fields=["ip_allowlist"])
    assert open_key.get("/api/v1/account", REMOTE_ADDR="203.0.113.7").status_code == 403
    assert open_key.get("/api/v1/account", REMOTE_ADDR="192.0.2.1").status_code == 200


def test_activity_log_names_the_key(owner, key_client, departments):
    client = key_client(owner)
    department = Department.objects.filter(is_active=True).first()
    response = client.post("/api/v1/tickets", {"department": department.pk, "subject": "Disk", "body": "Full"}, format="json")
    assert response.status_code == 201
    event = ActivityEvent.objects.get(action="api_request")
    assert event.actor == owner and event.customer == owner.customer
    assert event.details["api_key"] == client.api_key.name and event.details["api_key_prefix"] == client.api_key.prefix


@time_machine.travel("2026-06-01 12:00:30+00:00", tick=False)  # one fixed window for the whole test
def test_rate_limit_per_key_is_429_with_retry_after(owner, key_client, settings):
    settings.API_RATE_LIMIT = 3
    client, other = key_client(owner), key_client(owner)
    assert [client.get("/api/v1/account").status_code for _ in range(3)] == [200, 200, 200]
    response = client.get("/api/v1/account")
    assert response.status_code == 429
    assert int(response["Retry-After"]) == 31
    assert response.json()["error"]["type"] == "rate_limited"
    assert other.get("/api/v1/account").status_code == 200  # per key
