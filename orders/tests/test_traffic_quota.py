"""Traffic past the plan's quota: one notice per order and traffic period (a unique row, proven with
repeated and parallel checks), the customer's notification settings and language, the plan's throttle
applied and lifted through a bandwidth job, the "throttled" state on the service page, the staff
settings' validation, and the throttle on a real libvirt domain."""
import os
import subprocess
import xml.etree.ElementTree as ET
from datetime import datetime, timedelta, timezone as dt_timezone
from decimal import Decimal

import pytest
import time_machine
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.urls import reverse

from billing.tests.concurrency import run_concurrently
from notifications.models import EmailOutbox, Notification, NotificationPreference
from orders.models import Order, Plan, ProvisioningJob, TrafficOverage, UsageSample, VirtualMachine
from orders.provisioning import jobs
from orders.provisioning.libvirt_kvm import LibvirtModule
from orders.traffic_quota import traffic_quota_check_all

from .factories import PlanFactory
from .hypervisor import hypervisor, kvm, kvm_node, kvm_plan  # noqa: F401 - fixtures
from .test_provisioning_libvirt import active_order, run_queued
from .test_server_control import server, setting_up  # noqa: F401 - fixtures

T0 = datetime(2026, 5, 4, 9, 0, tzinfo=dt_timezone.utc)
NOW = T0 + timedelta(hours=3)
GIB = 1024 ** 3
HX = {"HX-Request": "true"}
KIND = "traffic_over_quota"
Action, State = ProvisioningJob.Action, ProvisioningJob.State


def over_quota(order, *, action=Plan.OverQuotaAction.NOTICE, mbps=None, used_gib=15):
    """The plan: 0.01 TB (10.24 GiB) a month; the server used `used_gib` since its period began at T0."""
    Plan.objects.filter(pk=order.plan_id).update(traffic_tb=Decimal("0.01"), over_quota_action=action, over_quota_mbps=mbps)
    Order.objects.filter(pk=order.pk).update(anchor_at=T0)
    vm = VirtualMachine.objects.get(order=order)
    for at, value in ((T0 + timedelta(minutes=1), 0), (T0 + timedelta(hours=2), used_gib * GIB)):
        UsageSample.objects.create(vm=vm, taken_at=at, cpu_time_ns=0, net_rx_bytes=value, net_tx_bytes=0,
                                   disk_read_bytes=0, disk_write_bytes=0)
    return vm


def bandwidth_jobs(order):
    return ProvisioningJob.objects.filter(order=order, action=Action.BANDWIDTH).order_by("pk")


@pytest.fixture
def fake_bandwidth(monkeypatch):
    """The libvirt module's bandwidth call recorded instead of made (its real call is tested below)."""
    calls = []
    monkeypatch.setattr(LibvirtModule, "set_bandwidth", lambda self, order, mbps: calls.append((order.pk, mbps)))
    return calls


@pytest.mark.django_db
@time_machine.travel(NOW, tick=False)
def test_past_the_quota_the_customer_is_told_once_per_period_however_often_the_check_runs(server, customer):
    over_quota(server)
    assert traffic_quota_check_all() == {"checked": 1, "notified": 1, "jobs": 0}
    assert traffic_quota_check_all() == {"checked": 1, "notified": 0, "jobs": 0}
    overage = TrafficOverage.objects.get()
    assert (overage.order, overage.period_start, overage.used_bytes, overage.action) == (server, T0, 15 * GIB, "notice")
    notice = Notification.objects.get(kind=KIND)
    assert notice.customer == customer and notice.link == f"/orders/{server.pk}/"
    assert ("has used 15.00 GiB of network traffic since 05/04/2026; its plan includes 0.01 TB a month."
            in notice.body_text)
    assert "keeps its full speed. The traffic count starts again on 06/04/2026." in notice.body_text
    assert EmailOutbox.objects.filter(kind=KIND).count() == 1
    assert not bandwidth_jobs(server).exists()  # notice only
    with pytest.raises(IntegrityError), transaction.atomic():
        TrafficOverage.objects.create(order=server, period_start=T0, used_bytes=1, quota_bytes=1, action="notice")

    # The next traffic period is a new one: over again, told again.
    vm = VirtualMachine.objects.get(order=server)
    month_later = T0 + timedelta(days=31, hours=2)
    UsageSample.objects.create(vm=vm, taken_at=month_later, cpu_time_ns=0, net_rx_bytes=40 * GIB, net_tx_bytes=0,
                               disk_read_bytes=0, disk_write_bytes=0)
    assert traffic_quota_check_all(now=month_later + timedelta(hours=1))["notified"] == 1
    assert Notification.objects.filter(kind=KIND).count() == 2


@pytest.mark.django_db
@time_machine.travel(NOW, tick=False)
def test_the_notice_follows_the_customers_settings_and_language(server, customer):
    NotificationPreference.objects.create(customer=customer, kind=KIND, email_enabled=False)
    customer.language = "ru"
    customer.save(update_fields=["language"])
    over_quota(server, action=Plan.OverQuotaAction.THROTTLE, mbps=10)
    traffic_quota_check_all()
    notice = Notification.objects.get(kind=KIND)  # in the inbox
    assert not EmailOutbox.objects.filter(kind=KIND).exists()  # but not mailed: the customer switched it off
    assert "израсходовал месячный трафик" in notice.subject
    assert "ограничена до 10 Мбит/с" in notice.body_text


@pytest.mark.django_db(transaction=True)
def test_parallel_checks_record_notify_and_throttle_once(server):
    over_quota(server, action=Plan.OverQuotaAction.THROTTLE, mbps=10)
    results, errors = run_concurrently(lambda: traffic_quota_check_all(now=NOW), [()] * 4)
    assert not errors
    assert sum(result["notified"] for result in results) == 1 and sum(result["jobs"] for result in results) == 1
    assert TrafficOverage.objects.count() == 1 and Notification.objects.filter(kind=KIND).count() == 1
    assert [(job.params, job.state) for job in bandwidth_jobs(server)] == [({"mbps": 10}, State.QUEUED)]


@pytest.mark.django_db
@time_machine.travel(NOW, tick=False)
def test_a_throttle_is_applied_through_the_module_shown_to_the_customer_and_lifted_next_period(
        client, owner, server, fake_bandwidth):
    over_quota(server, action=Plan.OverQuotaAction.THROTTLE, mbps=10)
    traffic_quota_check_all()
    job = bandwidth_jobs(server).get()
    assert (job.params, job.idempotency_key) == ({"mbps": 10}, f"order:{server.pk}:bandwidth:10:after:0")
    assert traffic_quota_check_all()["jobs"] == 0  # queued already
    assert jobs.job_run(job_id=job.pk) == "done"
    assert fake_bandwidth == [(server.pk, 10)]
    vm = VirtualMachine.objects.get(order=server)
    assert vm.bandwidth_mbps == 10 and vm.state == ""  # a bandwidth change leaves the power state alone
    assert traffic_quota_check_all()["jobs"] == 0  # applied: nothing to do

    client.force_login(owner)
    usage = client.get(reverse("orders:server_usage", args=[server.pk]), headers=HX).content.decode()
    assert 'data-testid="traffic-throttled"' in usage and "limited to 10 Mbit/s" in usage and "06/04/2026" in usage
    panel = client.get(reverse("orders:server_state", args=[server.pk]), headers=HX).content.decode()
    assert 'data-testid="server-throttled"' in panel and "Throttled to 10 Mbit/s" in panel

    next_period = T0 + timedelta(days=31, minutes=5)
    assert traffic_quota_check_all(now=next_period)["jobs"] == 1
    lift = bandwidth_jobs(server).last()
    assert (lift.params, lift.idempotency_key) == ({"mbps": None}, f"order:{server.pk}:bandwidth:unlimited:after:{job.pk}")
    assert jobs.job_run(job_id=lift.pk) == "done"
    assert fake_bandwidth[-1] == (server.pk, None) and VirtualMachine.objects.get(order=server).bandwidth_mbps is None
    usage = client.get(reverse("orders:server_usage", args=[server.pk]), headers=HX).content.decode()
    assert 'data-testid="traffic-throttled"' not in usage


@pytest.mark.django_db
@time_machine.travel(NOW, tick=False)
def test_a_plan_switched_to_notice_only_lifts_the_throttle_and_a_failed_job_waits_for_staff(server):
    vm = over_quota(server, action=Plan.OverQuotaAction.THROTTLE, mbps=10)
    VirtualMachine.objects.filter(pk=vm.pk).update(bandwidth_mbps=10)  # applied earlier this period
    Plan.objects.filter(pk=server.plan_id).update(over_quota_action=Plan.OverQuotaAction.NOTICE, over_quota_mbps=None)
    assert traffic_quota_check_all()["jobs"] == 1
    lift = bandwidth_jobs(server).get()
    assert lift.params == {"mbps": None}
    ProvisioningJob.objects.filter(pk=lift.pk).update(state=State.FAILED, last_error="ModuleError: node down")
    assert traffic_quota_check_all()["jobs"] == 0  # not re-queued every five minutes: staff retry it
    assert bandwidth_jobs(server).count() == 1


@pytest.mark.django_db
def test_the_over_quota_rule_is_validated_for_staff(client):
    plan = PlanFactory(traffic_tb=Decimal("1"), port_mbps=1000)
    plan.over_quota_action = Plan.OverQuotaAction.THROTTLE
    for mbps, field, message in ((None, "over_quota_mbps", "Give the speed the server is throttled to."),
                                 (1000, "over_quota_mbps", "The throttled speed must be below the port speed.")):
        plan.over_quota_mbps = mbps
        with pytest.raises(ValidationError) as error:
            plan.full_clean()
        assert error.value.message_dict[field] == [message]
    plan.over_quota_mbps, plan.traffic_tb = 10, None
    with pytest.raises(ValidationError, match="An unmetered plan has no quota to pass"):
        plan.full_clean()
    plan.traffic_tb = Decimal("1")
    plan.full_clean()
    with pytest.raises(IntegrityError), transaction.atomic():
        Plan.objects.filter(pk=plan.pk).update(over_quota_action="throttle", over_quota_mbps=None)

    from accounts.tests.factories import UserFactory

    client.force_login(UserFactory(customer=None, is_staff=True, is_superuser=True))
    page = client.get(reverse("admin:orders_plan_change", args=[plan.pk])).content.decode()
    assert 'name="over_quota_action"' in page and 'name="over_quota_mbps"' in page


# --- the real hypervisor ----------------------------------------------------------------------------------

def _interface(conn, name, flags=0):
    root = ET.fromstring(conn.lookupByName(name).XMLDesc(flags))
    return root.find("devices/interface")


def _kernel_shapes_traffic() -> bool:
    """Whether this kernel has what libvirt's bandwidth uses on a tap device (htb + sfq qdiscs, the
    ingress qdisc with a police action): tried on a throw-away veth pair."""
    device = f"pq{os.getpid() % 100000}"
    if subprocess.run(["ip", "link", "add", device, "type", "veth", "peer", "name", f"{device}p"], capture_output=True).returncode:
        return False
    try:
        steps = [["qdisc", "add", "dev", device, "root", "handle", "1:", "htb", "default", "1"],
                 ["class", "add", "dev", device, "parent", "1:", "classid", "1:1", "htb", "rate", "1000kbit"],
                 ["qdisc", "add", "dev", device, "parent", "1:1", "handle", "2:", "sfq", "perturb", "10"],
                 ["qdisc", "add", "dev", device, "ingress"],
                 ["filter", "add", "dev", device, "parent", "ffff:", "protocol", "all", "u32", "match", "u32", "0", "0",
                  "police", "rate", "1000kbit", "burst", "125kb", "mtu", "64kb", "drop", "flowid", ":1"]]
        return all(subprocess.run(["tc", *step], capture_output=True).returncode == 0 for step in steps)
    finally:
        subprocess.run(["ip", "link", "del", device], capture_output=True)


def _throttle_plan(plan):
    plan.traffic_tb, plan.over_quota_action, plan.over_quota_mbps = Decimal("0.01"), "throttle", 10
    plan.save()


def _past_quota(order) -> datetime:
    """15 GiB in the order's first traffic period, as the usage beat job records it; returns its anchor."""
    vm = VirtualMachine.objects.get(order=order)
    anchor = Order.objects.get(pk=order.pk).anchor_at
    for seconds, value in ((1, 0), (2, 15 * GIB)):
        UsageSample.objects.create(vm=vm, taken_at=anchor + timedelta(seconds=seconds), cpu_time_ns=0, net_rx_bytes=value,
                                   net_tx_bytes=0, disk_read_bytes=0, disk_write_bytes=0)
    return anchor


@pytest.mark.django_db
@time_machine.travel(T0, tick=True)
def test_a_throttle_is_kept_in_the_domains_definition_and_lifted_next_period(kvm, kvm_plan, customer, fund):  # noqa: F811
    """A stopped server: the limit goes into its persistent definition, which a start applies."""
    libvirt, conn, _pool = kvm
    _throttle_plan(kvm_plan)
    order = active_order(customer, fund, kvm_plan)
    LibvirtModule().power_off(order)
    vm = VirtualMachine.objects.get(order=order)
    anchor = _past_quota(order)
    assert traffic_quota_check_all(now=anchor + timedelta(minutes=5))["jobs"] == 1
    assert run_queued(order) == ["done"]
    dom = conn.lookupByName(vm.domain)
    mac = _interface(conn, vm.domain).find("mac").get("address")
    parameters = dom.interfaceParameters(mac, libvirt.VIR_DOMAIN_AFFECT_CONFIG)
    assert (parameters["inbound.average"], parameters["outbound.average"]) == (1250, 1250)  # kB/s = 10 Mbit/s
    bandwidth = _interface(conn, vm.domain, libvirt.VIR_DOMAIN_XML_INACTIVE).find("bandwidth")
    assert (bandwidth.find("inbound").get("average"), bandwidth.find("outbound").get("average")) == ("1250", "1250")
    assert VirtualMachine.objects.get(order=order).bandwidth_mbps == 10

    assert traffic_quota_check_all(now=anchor + timedelta(days=31, minutes=5))["jobs"] == 1  # the next period
    assert run_queued(order) == ["done"]
    assert _interface(conn, vm.domain, libvirt.VIR_DOMAIN_XML_INACTIVE).find("bandwidth/inbound") is None
    assert VirtualMachine.objects.get(order=order).bandwidth_mbps is None


@pytest.mark.django_db
@time_machine.travel(T0, tick=True)
def test_the_throttle_shapes_the_running_domains_tap_device(kvm, kvm_plan, customer, fund):  # noqa: F811
    libvirt, conn, _pool = kvm
    _throttle_plan(kvm_plan)
    order = active_order(customer, fund, kvm_plan)
    vm = VirtualMachine.objects.get(order=order)
    anchor = _past_quota(order)
    traffic_quota_check_all(now=anchor + timedelta(minutes=5))
    if not _kernel_shapes_traffic():
        # libvirt shapes a tap with htb + sfq and polices with act_police; without them the host's tc
        # refuses, and the job is retried with that error while nothing was changed.
        assert run_queued(order) == ["retry"]
        job = ProvisioningJob.objects.get(order=order, action=Action.BANDWIDTH)
        assert "tc " in job.last_error and VirtualMachine.objects.get(order=order).bandwidth_mbps is None
        assert _interface(conn, vm.domain, libvirt.VIR_DOMAIN_XML_INACTIVE).find("bandwidth") is None
        pytest.skip("this kernel lacks sch_sfq/act_police, which libvirt's interface bandwidth needs on the tap")
    assert run_queued(order) == ["done"]
    dom = conn.lookupByName(vm.domain)
    live = _interface(conn, vm.domain)
    mac = live.find("mac").get("address")
    for flags in (libvirt.VIR_DOMAIN_AFFECT_LIVE, libvirt.VIR_DOMAIN_AFFECT_CONFIG):  # now, and after a restart
        parameters = dom.interfaceParameters(mac, flags)
        assert (parameters["inbound.average"], parameters["outbound.average"]) == (1250, 1250)
    assert live.find("bandwidth/inbound").get("average") == "1250"
    shaped = subprocess.run(["tc", "class", "show", "dev", live.find("target").get("dev")], capture_output=True, text=True)
    assert "rate 10Mbit" in shaped.stdout  # the host's traffic control really shapes the tap device

    assert traffic_quota_check_all(now=anchor + timedelta(days=31, minutes=5))["jobs"] == 1
    assert run_queued(order) == ["done"]
    parameters = dom.interfaceParameters(mac, libvirt.VIR_DOMAIN_AFFECT_LIVE)
    assert (parameters["inbound.average"], parameters["outbound.average"]) == (0, 0)
    assert _interface(conn, vm.domain).find("bandwidth/inbound") is None
