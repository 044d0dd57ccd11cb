"""POST /api/v1/services/<id>/power: the same service as the page's power buttons."""
import pytest

from accounts.models import ActivityEvent, User
from orders.models import ProductType, ProvisioningJob
from orders.services import placing
from orders.tests.factories import PlanFactory, order_options
from orders.tests.test_provisioning_views import finish_create

from .conftest import trusted

pytestmark = pytest.mark.django_db


@pytest.fixture
def server(customer, fund):
    product_type, _ = ProductType.objects.get_or_create(code="kvm", defaults={
        "name": "KVM", "provisioner": ProductType.Provisioner.LIBVIRT, "order_fields": ["hostname"]})
    plan = PlanFactory(product_type=product_type)
    fund(customer, "50.00")
    order = placing.order_place(customer=customer, actor=None, plan=plan, period_months=1,
                                options=order_options(plan), idempotency_key="api-power").order
    finish_create(order)
    return order


def test_power_actions_queue_jobs_idempotently_for_technical_users_not_finance(customer, key_client, server):
    client = key_client(trusted(customer, User.Role.TECHNICAL))
    url = f"/api/v1/services/{server.pk}/power"
    first = client.post(url, {"action": "reboot"}, format="json", HTTP_IDEMPOTENCY_KEY="k1")
    assert first.status_code == 202 and first.json()["action"] == "reboot" and first.json()["state"] == "queued"
    client.post(url, {"action": "reboot"}, format="json", HTTP_IDEMPOTENCY_KEY="k1")  # a retried call
    assert ProvisioningJob.objects.filter(order=server, action="reboot").count() == 1
    assert client.post(url, {"action": "reboot"}, format="json").status_code == 202  # a new reboot
    assert ProvisioningJob.objects.filter(order=server, action="reboot").count() == 2
    assert ActivityEvent.objects.filter(action="server_power", customer=customer).count() == 2

    bad = client.post(url, {"action": "explode"}, format="json")
    assert bad.status_code == 400 and bad.json()["error"]["message"] == "Unknown server action."

    finance = key_client(trusted(customer, User.Role.FINANCE), scopes=["billing:read"])
    assert finance.post(url, {"action": "start"}, format="json").status_code == 403
    assert ProvisioningJob.objects.filter(order=server, action="start").count() == 0


def test_power_actions_share_the_per_service_rate_limit(owner, key_client, server, settings):
    settings.SERVER_POWER_RATE_LIMIT = "1/600"
    client = key_client(owner)
    url = f"/api/v1/services/{server.pk}/power"
    assert client.post(url, {"action": "shutdown"}, format="json").status_code == 202
    limited = client.post(url, {"action": "start"}, format="json")
    assert limited.status_code == 429 and int(limited["Retry-After"]) > 0
    assert not ProvisioningJob.objects.filter(order=server, action="start").exists()
