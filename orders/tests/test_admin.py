from datetime import timedelta

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.urls import reverse

from accounts.models import ActivityEvent
from accounts.tests.factories import StaffUserFactory
from orders.models import IpAddress, Order, ProductType
from orders.services import placing

from .factories import IpPoolFactory, PlanFactory, ProductTypeFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_client(client):
    staff = StaffUserFactory()
    client.force_login(staff)
    client.staff = staff
    return client


def action(client, name, order, **data):
    return client.post(reverse("admin:orders_order_changelist"),
                       {"action": name, ACTION_CHECKBOX_NAME: [order.pk], "apply": "1", **data})


def test_staff_actions_go_through_services_and_are_audited(staff_client, customer, fund):
    fund(customer, "100.00")
    order = placing.order_place(customer=customer, actor=None, plan=PlanFactory(), period_months=1, options={}, idempotency_key="a").order
    expires = order.expires_at
    action(staff_client, "suspend", order, reason="abuse report")
    order.refresh_from_db()
    assert order.status == Order.Status.SUSPENDED
    action(staff_client, "unsuspend", order)
    action(staff_client, "extend", order, days=5, reason="outage compensation")
    order.refresh_from_db()
    assert order.status == Order.Status.ACTIVE and order.expires_at == expires + timedelta(days=5)
    action(staff_client, "terminate", order, reason="customer request")
    order.refresh_from_db()
    assert order.status == Order.Status.TERMINATED and not IpAddress.objects.filter(order=order).exists()
    audit = list(ActivityEvent.objects.filter(customer=customer, actor=staff_client.staff).values_list("action", flat=True).order_by("pk"))
    assert audit == ["order_suspend", "order_unsuspend", "order_extend", "order_terminate"]
    assert order.events.filter(source="staff", actor=staff_client.staff).count() == 4


def test_manual_provisioning_is_completed_by_staff_with_the_ip(staff_client, customer, fund):
    fund(customer, "100.00")
    plan = PlanFactory(product_type=ProductTypeFactory(code="dedicated", name="Dedicated", provisioner=ProductType.Provisioner.MANUAL), ip_pool=None)
    order = placing.order_place(customer=customer, actor=None, plan=plan, period_months=1, options={}, idempotency_key="m").order
    assert order.status == Order.Status.PENDING and order.provisioning == Order.Provisioning.WAITING_STAFF
    response = action(staff_client, "complete_provisioning", order, ip="not-an-ip")
    assert response.status_code == 200  # the form again, with its error
    action(staff_client, "complete_provisioning", order, ip="203.0.113.7")
    order.refresh_from_db()
    assert order.status == Order.Status.ACTIVE and order.ip == "203.0.113.7" and order.expires_at


def test_admin_pages_render(staff_client, customer, fund):
    fund(customer, "100.00")
    order = placing.order_place(customer=customer, actor=None, plan=PlanFactory(), period_months=1, options={}, idempotency_key="r").order
    for url in (reverse("admin:orders_order_changelist") + "?expiring=7", reverse("admin:orders_order_change", args=[order.pk]),
                reverse("admin:orders_plan_changelist"), reverse("admin:orders_ippool_changelist"),
                reverse("admin:orders_plan_change", args=[order.plan_id])):
        assert staff_client.get(url).status_code == 200


def test_staff_add_addresses_to_a_pool(staff_client):
    pool = IpPoolFactory()
    staff_client.post(reverse("admin:orders_ippool_changelist"), {"action": "add_addresses", ACTION_CHECKBOX_NAME: [pool.pk], "apply": "1",
                                                                  "addresses": "192.0.2.10\n192.0.2.11\n"})
    assert IpAddress.objects.filter(pool=pool).count() == 2
    staff_client.post(reverse("admin:orders_ippool_changelist"), {"action": "add_addresses", ACTION_CHECKBOX_NAME: [pool.pk], "apply": "1",
                                                                  "addresses": "192.0.2.12\n999.1.1.1"})
    assert IpAddress.objects.filter(pool=pool).count() == 2


def test_order_page_shows_options_as_a_labelled_table_and_events_by_name(staff_client, customer, fund):
    fund(customer, "100.00")
    options = {"hostname": "web1.example.com", "os_image": "Ubuntu 24.04 LTS", "location": "Amsterdam"}
    order = placing.order_place(customer=customer, actor=None, plan=PlanFactory(), period_months=1,
                                options=options, idempotency_key="admin-page").order
    html = staff_client.get(reverse("admin:orders_order_change", args=[order.pk])).content.decode()
    table = html[html.index('data-testid="order-options"'):]
    table = table[:table.index("</table>")]
    for label, value in (("Hostname", "web1.example.com"), ("Operating system", "Ubuntu 24.04 LTS"), ("Location", "Amsterdam")):
        assert f'<tr><th scope="row">{label}</th><td>{value}</td></tr>' in table
    assert "os_image" not in html and "&quot;hostname&quot;" not in html  # no raw JSON
    assert "OrderEvent object" not in html and "OrderRenewal object" not in html
    assert "Order placed" in html and "Order paid" in html
