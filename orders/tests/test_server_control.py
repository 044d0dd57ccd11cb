"""The customer's server controls: live state (htmx), power actions as provisioning jobs with
confirmation, the activity log, the per-service rate limit, and who may use them."""
from datetime import datetime, timezone as dt_timezone

import pytest
import time_machine
from django.db import transaction
from django.urls import reverse

from accounts.models import ActivityEvent, User
from accounts.tests.factories import UserFactory
from orders.models import Order, ProvisioningJob, VirtualMachine
from orders.services import staff

from .hypervisor import hypervisor  # noqa: F401 - fixture
from .test_provisioning_views import finish_create, setting_up  # noqa: F401 - fixture

pytestmark = pytest.mark.django_db
T0 = datetime(2026, 5, 4, 9, 0, tzinfo=dt_timezone.utc)
HX = {"HX-Request": "true"}
REQUEST_A, REQUEST_B = "a" * 32, "b" * 32


@pytest.fixture
def server(setting_up):  # noqa: F811
    finish_create(setting_up)
    return Order.objects.get(pk=setting_up.pk)


def power_url(order, action):
    return reverse("orders:server_power", args=[order.pk, action])


def power_jobs(order):
    return ProvisioningJob.objects.filter(order=order, action__in=["start", "shutdown", "reboot", "power_off"])


@time_machine.travel(T0, tick=False)
def test_a_power_action_is_confirmed_then_queued_once_and_logged_with_user_and_ip(client, owner, server):
    client.force_login(owner)
    confirm = client.get(power_url(server, "reboot"), headers=HX)
    assert confirm.status_code == 200 and 'data-testid="power-confirm"' in confirm.content.decode()
    assert not power_jobs(server).exists()  # the GET only asks

    done = client.post(power_url(server, "reboot"), {"request_id": REQUEST_A}, headers=HX, REMOTE_ADDR="203.0.113.7")
    assert done.status_code == 200 and "Reboot requested." in done.content.decode()
    client.post(power_url(server, "reboot"), {"request_id": REQUEST_A}, headers=HX)  # double submit
    assert power_jobs(server).count() == 1
    job = power_jobs(server).get()
    assert (job.action, job.state, job.requested_by, job.source) == ("reboot", "queued", owner, "customer")
    event = ActivityEvent.objects.get(action="server_power")
    assert (event.actor, event.ip, event.customer, event.visible_to_customer) == (owner, "203.0.113.7", server.customer, True)
    assert event.details == {"order": server.pk, "action": "reboot", "job": job.pk}

    # Regression: a second reboot right after the first is a new job (the old key deduplicated it).
    client.post(power_url(server, "reboot"), {"request_id": REQUEST_B}, headers=HX)
    assert power_jobs(server).filter(action="reboot").count() == 2
    assert ActivityEvent.objects.filter(action="server_power").count() == 2


@time_machine.travel(T0, tick=False)
def test_bad_input_and_a_suspended_server_change_nothing(client, owner, server):
    client.force_login(owner)
    assert client.post(power_url(server, "explode"), {"request_id": REQUEST_A}).status_code == 404
    refused = client.post(power_url(server, "start"), {"request_id": "not-a-uuid"}, headers=HX)
    assert refused.status_code == 400 and "The form has expired" in refused.content.decode()
    with transaction.atomic():
        staff.order_suspend(order=Order.objects.select_for_update().get(pk=server.pk), actor=None)
    suspended = client.post(power_url(server, "start"), {"request_id": REQUEST_A}, headers=HX)
    assert suspended.status_code == 400 and "cannot be controlled now" in suspended.content.decode()
    assert not power_jobs(server).exists() and not ActivityEvent.objects.filter(action="server_power").exists()
    panel = client.get(reverse("orders:server_state", args=[server.pk]), headers=HX).content.decode()
    assert 'data-state="suspended"' in panel and 'data-testid="power-controls"' not in panel


@time_machine.travel(T0, tick=False)
def test_technical_users_control_the_server_finance_sees_its_state_only(client, customer, server):
    technical = UserFactory(customer=customer, role=User.Role.TECHNICAL)
    client.force_login(technical)
    assert client.post(power_url(server, "shutdown"), {"request_id": REQUEST_A}).status_code == 302
    assert power_jobs(server).filter(action="shutdown", requested_by=technical).exists()

    finance = UserFactory(customer=customer, role=User.Role.FINANCE)
    client.force_login(finance)
    for action in ("start", "shutdown", "reboot", "power_off"):
        assert client.get(power_url(server, action)).status_code == 403
        assert client.post(power_url(server, action), {"request_id": REQUEST_B}).status_code == 403
    assert power_jobs(server).count() == 1
    panel = client.get(reverse("orders:server_state", args=[server.pk]), headers=HX)
    assert panel.status_code == 200 and 'data-testid="server-state"' in panel.content.decode()
    assert 'data-testid="power-controls"' not in panel.content.decode()


@time_machine.travel(T0, tick=False)
def test_another_customers_server_is_404_on_every_control_url(client, server):
    stranger = UserFactory()
    client.force_login(stranger)
    assert client.get(reverse("orders:server_state", args=[server.pk]), headers=HX).status_code == 404
    for action in ("start", "shutdown", "reboot", "power_off"):
        assert client.get(power_url(server, action)).status_code == 404
        assert client.post(power_url(server, action), {"request_id": REQUEST_A}).status_code == 404
    assert not power_jobs(server).exists()


@time_machine.travel(T0, tick=False)
def test_power_actions_are_rate_limited_per_service(client, owner, server, settings):
    settings.SERVER_POWER_RATE_LIMIT = "2/600"
    client.force_login(owner)
    for request_id in ("1" * 32, "2" * 32):
        assert client.post(power_url(server, "reboot"), {"request_id": request_id}).status_code == 302
    limited = client.post(power_url(server, "reboot"), {"request_id": "3" * 32})
    assert limited.status_code == 429 and int(limited["Retry-After"]) > 0
    assert power_jobs(server).count() == 2


@time_machine.travel(T0, tick=False)
def test_the_state_panel_asks_the_hypervisor_after_the_page_loaded(client, owner, server, hypervisor):  # noqa: F811
    VirtualMachine.objects.filter(order=server).update(state="running")  # last recorded; the domain does not exist
    client.force_login(owner)
    page = client.get(reverse("orders:order_detail", args=[server.pk])).content.decode()
    assert 'hx-trigger="load"' in page and 'data-state=' not in page  # the page itself never waits on the host
    panel = client.get(reverse("orders:server_state", args=[server.pk]), headers=HX).content.decode()
    assert 'data-state="missing"' in panel and "Not found on the host" in panel
    assert 'data-testid="power-controls"' in panel
