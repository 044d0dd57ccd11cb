"""Redis stopped (our own redis-server, never the shared one): customer pages answer 200, no form
submission returns a 500, the payment and the notifications are stored, and after Redis returns a
worker (with beat's sweepers) delivers everything that was queued."""
import re
from decimal import Decimal

import pytest

from accounts.tests.factories import UserFactory
from billing.gateways.tests.factories import GatewayConfigFactory
from billing.models import Invoice, Payment
from billing.tests.factories import make_currencies
from notifications.models import EmailOutbox, Notification
from notifications.tasks import outbox_sweep_task
from billing.gateways.tasks import sandbox_webhooks_deliver_due
from billing.services.payments import payment_record
from orders.models import Order
from orders.tests.factories import PlanFactory
from portal.celery import app as celery_app
from tickets.models import Department, Ticket

from .conftest import Browser, app_env, database_url, free_port, order_form_data, wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow_fault]

PAGES = ["/", "/orders/", "/billing/", "/billing/invoices/", "/billing/expenses/", "/tickets/", "/notifications/",
         "/accounts/settings/profile/"]


def hidden(html: str, name: str) -> str:
    return re.search(rf'name="{name}" value="([^"]*)"', html).group(1)


def test_customer_pages_and_forms_work_while_redis_is_down(processes, throwaway_redis):
    make_currencies()
    GatewayConfigFactory(code="sandbox")
    department = Department.objects.filter(is_active=True).first() or Department.objects.create(
        name="Technical support", slug="support", category="support", email="support@portal.example")
    user = UserFactory()
    payment_record(idempotency_key="faults:redis:fund", customer=user.customer, amount=Decimal("50.00"), currency="EUR",
                   method="bank_transfer")
    plan = PlanFactory()
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    env = app_env(database=database_url(), redis=throwaway_redis.url, PORTAL_BASE_URL=base_url,
                  NOTIFICATIONS_OUTBOX_PENDING_GRACE_SECONDS=0)
    base = processes.gunicorn("web", env, port=port)
    browser = Browser(base)
    browser.login(user.username, "Correct-Horse-42")

    throwaway_redis.stop()
    for path in PAGES:
        assert browser.get(path)[0] == 200, path

    # Top up by the sandbox card: invoice, payment attempt, the provider's page, its webhook (posted
    # synchronously after commit by the sandbox) - none of it needs the broker.
    _status, page, _h = browser.get("/billing/")
    status, _body, headers = browser.post("/billing/topup/", {"amount": "30.00", "currency": "EUR",
                                                              "request_key": hidden(page, "request_key")})
    assert status == 302
    invoice_path = headers["Location"]
    invoice_id = int(re.search(r"/invoices/(\d+)/", invoice_path).group(1))
    status, _body, headers = browser.post(f"/pay/invoices/{invoice_id}/", {"gateway": "sandbox"})
    assert status == 302, _body[:2000]
    checkout = headers["Location"].replace(base_url, "")
    status, _body, _headers = browser.post(checkout, {"number": "4242 4242 4242 4242", "expiry": "12/30", "cvc": "123"})
    assert status == 302

    # An order paid from the balance, a renewal, a ticket: each writes mail to the outbox.
    key = hidden(browser.get(f"/orders/new/{plan.pk}/")[1], "request_key")
    assert browser.post(f"/orders/new/{plan.pk}/confirm/", order_form_data(plan, key))[0] == 302
    order = Order.objects.get(customer=user.customer)
    renew_page = browser.get(f"/orders/{order.pk}/renew/")[1]
    assert browser.post(f"/orders/{order.pk}/renew/", {"periods": 1, "period": hidden(renew_page, "period")})[0] == 302
    assert browser.post("/tickets/new/", {"department": department.pk, "subject": "Broker down?", "priority": "normal",
                                          "body": "Testing."})[0] == 302
    for path in PAGES:
        assert browser.get(path)[0] == 200, path

    assert Invoice.objects.get(pk=invoice_id).status == Invoice.Status.PAID
    assert Payment.objects.filter(customer=user.customer, gateway="sandbox").count() == 1
    assert Ticket.objects.filter(customer=user.customer).count() == 1
    assert Notification.objects.filter(customer=user.customer).exists()
    waiting = EmailOutbox.objects.filter(status="pending").count()
    assert waiting >= 3  # payment received, order, renewal, ticket to the department ...
    assert not EmailOutbox.objects.filter(status="sent").exists()

    # Redis is back: a worker and beat's two sweepers deliver everything that waited in the database.
    throwaway_redis.start()
    processes.worker("worker", env)
    with celery_app.connection_for_write(throwaway_redis.url) as conn:
        outbox_sweep_task.apply_async(connection=conn)
        sandbox_webhooks_deliver_due.apply_async(connection=conn)
    wait_for(lambda: not EmailOutbox.objects.exclude(status="sent").exists(), 60, "the outbox to be sent", interval=0.5)
    assert EmailOutbox.objects.filter(status="sent").count() >= waiting
    assert Payment.objects.filter(customer=user.customer, gateway="sandbox").count() == 1
    assert browser.get("/")[0] == 200  # the same gunicorn, never restarted
