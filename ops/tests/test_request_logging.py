"""Request ids in the response header and in every log line (JSON or plain), with user and customer."""
import io
import json
import logging

import pytest

from accounts.tests.factories import UserFactory
from ops.logs import JsonFormatter, RequestContextFilter


@pytest.fixture
def json_log():
    """The root logger's lines as JSON objects, through the production formatter and filter."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RequestContextFilter())
    root = logging.getLogger()
    root.addHandler(handler)
    yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    root.removeHandler(handler)


@pytest.mark.django_db
def test_every_response_carries_a_fresh_request_id(client):
    first = client.get("/healthz")["X-Request-ID"]
    second = client.get("/healthz")["X-Request-ID"]
    assert len(first) == 32 and first != second


@pytest.mark.django_db
def test_a_sane_request_id_from_the_proxy_is_kept_and_a_forged_one_replaced(client):
    assert client.get("/healthz", HTTP_X_REQUEST_ID="nginx-7f3a9c21e0")["X-Request-ID"] == "nginx-7f3a9c21e0"
    forged = client.get("/healthz", HTTP_X_REQUEST_ID='x" injected\nline')["X-Request-ID"]
    assert forged != 'x" injected\nline' and len(forged) == 32


@pytest.mark.django_db
def test_log_lines_are_json_with_request_user_and_customer_ids(client, json_log):
    user = UserFactory()
    client.force_login(user)
    response = client.get("/billing/invoices/999999999/")  # a 404: Django logs it as the request ends
    assert response.status_code == 404
    lines = [line for line in json_log() if line["logger"] == "django.request"]
    assert lines, json_log()
    line = lines[-1]
    assert line["request_id"] == response["X-Request-ID"]
    assert line["user_id"] == user.pk
    assert line["customer_id"] == user.customer_id
    assert line["level"] == "WARNING"
    assert "Not Found" in line["message"] and line["timestamp"].endswith("+00:00")


@pytest.mark.django_db
def test_lines_outside_a_request_have_no_request_context(client, json_log):
    client.get("/healthz")
    logging.getLogger("ops.tests").warning("after the request")
    line = json_log()[-1]
    assert line["message"] == "after the request"
    assert line["request_id"] is None and line["user_id"] is None and line["customer_id"] is None
