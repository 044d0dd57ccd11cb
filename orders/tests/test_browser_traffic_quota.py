"""In Chromium: a server past its traffic quota on a throttling plan shows the limit on its page (the
state panel's badge and the usage panel's notice), after the beat check and the bandwidth job ran."""
from datetime import timedelta
from decimal import Decimal

import pytest

from accounts.tests.factories import DEFAULT_PASSWORD
from orders.models import Order, Plan, ProvisioningJob, UsageSample, VirtualMachine
from orders.provisioning import jobs
from orders.provisioning.libvirt_kvm import LibvirtModule
from orders.traffic_quota import traffic_quota_check_all

from .test_server_control import server, setting_up  # noqa: F401 - fixtures

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
GIB = 1024 ** 3


def test_a_throttled_server_says_so_on_its_page(page, login, screenshot, owner, server, monkeypatch):  # noqa: F811
    monkeypatch.setattr(LibvirtModule, "set_bandwidth", lambda self, order, mbps: None)  # tested on the hypervisor elsewhere
    Plan.objects.filter(pk=server.plan_id).update(traffic_tb=Decimal("0.01"), over_quota_action="throttle", over_quota_mbps=10)
    vm = VirtualMachine.objects.get(order=server)
    anchor = Order.objects.get(pk=server.pk).anchor_at
    for seconds, value in ((1, 0), (60, 15 * GIB)):
        UsageSample.objects.create(vm=vm, taken_at=anchor + timedelta(seconds=seconds), cpu_time_ns=0, net_rx_bytes=value,
                                   net_tx_bytes=0, disk_read_bytes=0, disk_write_bytes=0)
    assert traffic_quota_check_all()["notified"] == 1
    job = ProvisioningJob.objects.get(order=server, action="bandwidth")
    assert jobs.job_run(job_id=job.pk) == "done"

    login(owner.username, DEFAULT_PASSWORD)
    page.goto(f"/orders/{server.pk}/")
    assert "Throttled to 10 Mbit/s" in page.get_by_test_id("server-throttled").inner_text()
    notice = page.get_by_test_id("traffic-throttled")
    assert "limited to 10 Mbit/s until the traffic count starts again" in notice.inner_text()
    assert page.get_by_test_id("traffic-over").is_visible()
    notice.scroll_into_view_if_needed()
    screenshot("server-traffic-throttled")
