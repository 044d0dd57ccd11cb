from datetime import datetime, timedelta, timezone as dt_timezone
from decimal import Decimal

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from accounts.models import User
from accounts.tests.factories import UserFactory
from billing.models import Invoice
from billing.selectors import balance_of
from orders.models import Order, OrderRenewal
from orders.services import placing

from .factories import PlanFactory

pytestmark = pytest.mark.django_db


def make_orders(customer, plan, n, start=None):
    start = start or datetime(2026, 1, 1, tzinfo=dt_timezone.utc)
    Order.objects.bulk_create(
        Order(customer=customer, plan=plan, period_months=1, price=Decimal(10 + i), currency="EUR",
              status=Order.Status.ACTIVE if i % 3 else Order.Status.SUSPENDED, ip=f"198.51.{i // 250}.{i % 250 + 1}",
              anchor_at=start, anchor_months=1, period_started_at=start, expires_at=start + timedelta(days=30 + i),
              current_period=1)
        for i in range(n)
    )


@pytest.fixture
def client_owner(client, owner):
    client.force_login(owner)
    return client


def table_ids(response):
    return [row["pk"] for row in response.context["rows"]]


def test_orders_table_search_sort_filter(client_owner, customer, currencies):
    plan_a = PlanFactory(name="Alpha VPS")
    plan_b = PlanFactory(name="Beta Dedicated", product_type=plan_a.product_type)
    make_orders(customer, plan_a, 5)
    make_orders(customer, plan_b, 1)
    beta = Order.objects.get(plan=plan_b)
    url = reverse("orders:order_list")

    assert table_ids(client_owner.get(url, {"q": "beta"})) == [beta.pk]
    # A bare number is an order number or part of an address (so "8" may also find 198.51.x.x).
    assert beta.pk in table_ids(client_owner.get(url, {"q": str(beta.pk)}))
    assert table_ids(client_owner.get(url, {"q": f"#{beta.pk}"})) == [beta.pk]
    by_ip = Order.objects.filter(plan=plan_a).order_by("pk")[2]
    assert table_ids(client_owner.get(url, {"q": by_ip.ip})) == [by_ip.pk]
    suspended = table_ids(client_owner.get(url, {"status": "suspended"}))
    assert suspended and all(Order.objects.get(pk=i).status == "suspended" for i in suspended)
    costs = [Order.objects.get(pk=i).price for i in table_ids(client_owner.get(url, {"sort": "-cost"}))]
    assert costs == sorted(costs, reverse=True)
    expiries = [Order.objects.get(pk=i).expires_at for i in table_ids(client_owner.get(url, {"sort": "expires"}))]
    assert expiries == sorted(expiries)
    statuses = [Order.objects.get(pk=i).status for i in table_ids(client_owner.get(url, {"sort": "status"}))]
    assert statuses == sorted(statuses, key=lambda s: 0 if s == "active" else 1)
    assert client_owner.get(url, {"q": "nothing-matches"}).context["rows"] == []
    assert client_owner.get(url, {"sort": "bogus", "status": "bogus", "page": "x"}).status_code == 200


def test_orders_table_query_count_is_the_same_for_10_and_1000_orders(client_owner, customer, currencies):
    plan = PlanFactory()
    make_orders(customer, plan, 10)
    url = reverse("orders:order_list")
    client_owner.get(url)  # warm caches (content types, session)
    with CaptureQueriesContext(connection) as small:
        assert client_owner.get(url).status_code == 200
    make_orders(customer, PlanFactory(product_type=plan.product_type), 990)
    with CaptureQueriesContext(connection) as large:
        response = client_owner.get(url)
    assert len(response.context["rows"]) == 25 and response.context["page"].paginator.count == 1000
    assert len(small.captured_queries) == len(large.captured_queries)
    assert len(large.captured_queries) <= 12


def test_orders_table_total_is_right_with_a_status_filter_and_a_search(client_owner, customer, currencies):
    """Without a search the paginator's total comes from the status counts (no COUNT query); with one it is counted."""
    make_orders(customer, PlanFactory(), 40)  # every third one suspended: 14
    url = reverse("orders:order_list")
    for query, total in (({}, 40), ({"status": "suspended"}, 14), ({"status": "cancelled"}, 0), ({"status": "bogus"}, 40),
                         ({"q": "198.51.0.1"}, 11), ({"q": "#"}, 40), ({"q": "198.51.0.1", "status": "suspended"}, 5)):
        with CaptureQueriesContext(connection) as queries:
            response = client_owner.get(url, query)
        assert response.context["page"].paginator.count == total, query
        assert len(response.context["rows"]) == min(total, 25)
        counted = [q["sql"] for q in queries.captured_queries if q["sql"].startswith('SELECT COUNT(*) AS "__count" FROM "orders_order"')]
        assert bool(counted) == ("q" in query and query["q"] != "#"), counted


def test_orders_table_compiled_rows_are_the_querysets_rows_for_every_sort_and_status(client_owner, customer, currencies):
    from orders import selectors

    make_orders(customer, PlanFactory(), 30)
    make_orders(UserFactory().customer, PlanFactory(), 3)
    Order.objects.filter(pk__in=Order.objects.filter(customer=customer).order_by("pk").values("pk")[:4]).update(
        status=Order.Status.PENDING, expires_at=None, period_started_at=None)
    for sort in selectors.SORTS:
        for descending in (True, False):
            for status in ("", "active", "suspended", "bogus"):
                params = selectors.OrderListParams(status=status, sort=sort, descending=descending)
                expected = list(selectors.order_table_values(customer=customer, params=params))
                for start, stop in ((0, 25), (25, 50), (5, 7)):
                    assert selectors.order_table_rows(customer=customer, params=params)[start:stop] == expected[start:stop]
    page2 = client_owner.get(reverse("orders:order_list"), {"sort": "-cost", "page": 2})
    assert len(page2.context["rows"]) == 5 and page2.context["page"].number == 2


def test_another_customers_order_is_404(client_owner, currencies):
    stranger = UserFactory().customer
    make_orders(stranger, PlanFactory(), 1)
    order = Order.objects.get(customer=stranger)
    for name in ("order_detail", "order_renew", "order_cancel", "order_change_plan"):
        assert client_owner.get(reverse(f"orders:{name}", args=[order.pk])).status_code == 404
    assert client_owner.post(reverse("orders:order_renew", args=[order.pk]), {"periods": 1}).status_code == 404
    response = client_owner.post(reverse("orders:order_batch_renew"), {"orders": [order.pk], "periods": 1})
    assert response.status_code == 302
    assert not OrderRenewal.objects.exists()


def test_technical_user_sees_services_but_cannot_spend_the_balance(client, customer, fund):
    fund(customer, "100.00")
    plan = PlanFactory()
    order = placing.order_place(customer=customer, actor=None, plan=plan, period_months=1, options={}, idempotency_key="t").order
    technical = UserFactory(customer=customer, role=User.Role.TECHNICAL)
    client.force_login(technical)
    assert client.get(reverse("orders:order_list")).status_code == 200
    detail = client.get(reverse("orders:order_detail", args=[order.pk]))
    assert detail.status_code == 200 and b'data-testid="action-renew"' not in detail.content
    assert client.post(reverse("orders:order_renew", args=[order.pk]), {"periods": 1}).status_code == 403
    assert client.post(reverse("orders:order_batch_renew"), {"orders": [order.pk], "periods": 1}).status_code == 403
    assert client.post(reverse("orders:order_auto_renew", args=[order.pk]), {"auto_renew": "off"}).status_code == 403
    assert client.post(reverse("orders:order_confirm", args=[plan.pk]), {}).status_code == 403
    assert OrderRenewal.objects.count() == 0 and balance_of(customer) == Decimal("90.00")
    finance = UserFactory(customer=customer, role=User.Role.FINANCE)
    client.force_login(finance)
    assert client.get(reverse("orders:order_list")).status_code == 403  # finance has no Services area


def test_order_flow_review_then_confirm_pays_from_balance(client_owner, customer, fund):
    fund(customer, "100.00")
    plan = PlanFactory(setup_fee=Decimal("5.00"))
    new_url = reverse("orders:order_new", args=[plan.pk])
    form = client_owner.get(new_url).context["form"]
    data = {"period_months": 3, "request_key": form.initial["request_key"], "hostname": "web1.example.com",
            "os_image": form.fields["os_image"].choices[0][0], "location": "ams"}
    review = client_owner.post(new_url, data)
    assert review.status_code == 200 and review.context["total"] == Decimal("33.00") and review.context["covers"]
    assert not Order.objects.exists()  # the review changes nothing
    confirm_url = reverse("orders:order_confirm", args=[plan.pk])
    first = client_owner.post(confirm_url, data)
    again = client_owner.post(confirm_url, data)  # double submit
    order = Order.objects.get()
    assert first.status_code == again.status_code == 302
    assert order.status == Order.Status.ACTIVE and order.options == {"hostname": "web1.example.com", "os_image": "Ubuntu 24.04", "location": "Amsterdam"}
    assert balance_of(customer) == Decimal("67.00")


@pytest.mark.parametrize("field,value", [("hostname", "-bad-.example"), ("hostname", "a" * 300), ("period_months", "5"),
                                         ("os_image", "999999"), ("location", "mars"), ("request_key", "short")])
def test_bad_order_input_is_a_form_error_and_changes_nothing(client_owner, customer, fund, field, value):
    fund(customer, "100.00")
    plan = PlanFactory()
    new_url = reverse("orders:order_new", args=[plan.pk])
    form = client_owner.get(new_url).context["form"]
    data = {"period_months": 1, "request_key": form.initial["request_key"], "hostname": "ok.example.com",
            "os_image": form.fields["os_image"].choices[0][0], "location": "ams", field: value}
    for url in (new_url, reverse("orders:order_confirm", args=[plan.pk])):
        response = client_owner.post(url, data)
        assert response.status_code == 200 and response.context["form"].errors
    assert not Order.objects.exists() and not Invoice.objects.exists()


def test_order_without_enough_balance_goes_to_the_invoice(client_owner, customer, currencies):
    plan = PlanFactory()
    data = {"period_months": 1, "request_key": "a" * 32, "hostname": "web1.example.com",
            "os_image": str(plan.product_type.os_images.first().pk), "location": "ams"}
    review = client_owner.post(reverse("orders:order_new", args=[plan.pk]), data)
    assert not review.context["covers"] and review.context["shortfall"] == Decimal("10.00")
    response = client_owner.post(reverse("orders:order_confirm", args=[plan.pk]), data)
    order = Order.objects.get()
    assert response.url == reverse("billing:invoice_detail", args=[order.invoice_id])


def test_batch_renewal_from_the_table(client_owner, customer, fund):
    fund(customer, "100.00")
    plan = PlanFactory()
    orders = [placing.order_place(customer=customer, actor=None, plan=plan, period_months=1, options={}, idempotency_key=str(i)).order
              for i in range(3)]
    response = client_owner.post(reverse("orders:order_batch_renew"), {"orders": [o.pk for o in orders[:2]], "periods": 2})
    assert response.status_code == 302
    assert sorted(OrderRenewal.objects.values_list("order_id", flat=True)) == [o.pk for o in orders[:2]]
    assert balance_of(customer) == Decimal("30.00")
    assert client_owner.post(reverse("orders:order_batch_renew"), {"orders": ["x"], "periods": 1}).status_code == 302
    assert client_owner.post(reverse("orders:order_batch_renew"), {"orders": [orders[2].pk], "periods": 0}).status_code == 302
    assert OrderRenewal.objects.count() == 2


def test_detail_page_shows_history_invoices_and_auto_renew_toggle(client_owner, customer, fund):
    fund(customer, "100.00")
    order = placing.order_place(customer=customer, actor=None, plan=PlanFactory(), period_months=1, options={}, idempotency_key="d").order
    response = client_owner.get(reverse("orders:order_detail", args=[order.pk]))
    assert response.status_code == 200
    assert [i.pk for i in response.context["invoices"]] == [order.invoice_id]
    assert b"Activated" in response.content
    toggled = client_owner.post(reverse("orders:order_auto_renew", args=[order.pk]), {"auto_renew": "off"}, HTTP_HX_REQUEST="true")
    assert toggled.status_code == 200 and b"auto-renew-saved" in toggled.content
    order.refresh_from_db()
    assert order.auto_renew is False
    client_owner.post(reverse("orders:order_auto_renew", args=[order.pk]), {"auto_renew": "default"})
    order.refresh_from_db()
    assert order.auto_renew is None


def test_change_plan_page_shows_the_prorated_amount_before_confirming(client_owner, customer, fund):
    fund(customer, "100.00")
    small = PlanFactory()
    big = PlanFactory(product_type=small.product_type, prices={(1, "EUR"): "40.00"})
    with time_machine.travel(datetime(2026, 4, 1, tzinfo=dt_timezone.utc), tick=False):
        order = placing.order_place(customer=customer, actor=None, plan=small, period_months=1, options={}, idempotency_key="c").order
    with time_machine.travel(datetime(2026, 4, 21, tzinfo=dt_timezone.utc), tick=False):
        url = reverse("orders:order_change_plan", args=[order.pk])
        page = client_owner.get(url, {"plan": big.pk})
        assert page.context["selected"].proration.amount == Decimal("10.00")  # 30 × 10/30
        assert "€10.00" in page.content.decode()
        order.refresh_from_db()
        assert order.plan == small  # GET changes nothing
        client_owner.post(url, {"plan": big.pk, "expected_amount": "10.00"})
    order.refresh_from_db()
    assert order.plan == big and balance_of(customer) == Decimal("80.00")


def test_cancel_views(client_owner, customer, fund):
    fund(customer, "100.00")
    order = placing.order_place(customer=customer, actor=None, plan=PlanFactory(), period_months=1, options={}, idempotency_key="c").order
    url = reverse("orders:order_cancel", args=[order.pk])
    assert client_owner.post(url, {"when": "period_end"}).status_code == 200  # confirmation box required
    client_owner.post(url, {"when": "period_end", "confirm": "on"})
    order.refresh_from_db()
    assert order.cancel_at_period_end and order.status == Order.Status.ACTIVE
    # A scheduled cancellation is not renewed: the page must not promise auto-renewal (nor offer the switch).
    detail = client_owner.get(reverse("orders:order_detail", args=[order.pk])).content.decode()
    assert "Off: the service is cancelled at the end of the paid period." in detail
    assert "On: renewed from your balance" not in detail and 'data-testid="auto-renew-select"' not in detail
    client_owner.post(reverse("orders:order_cancel_undo", args=[order.pk]))
    order.refresh_from_db()
    assert not order.cancel_at_period_end
    client_owner.post(url, {"when": "now", "confirm": "on"})
    order.refresh_from_db()
    assert order.status == Order.Status.CANCELLED


def test_get_never_changes_state(client_owner, customer, fund):
    fund(customer, "100.00")
    order = placing.order_place(customer=customer, actor=None, plan=PlanFactory(), period_months=1, options={}, idempotency_key="g").order
    for name in ("order_auto_renew", "order_cancel_undo", "order_change_plan_cancel"):
        assert client_owner.get(reverse(f"orders:{name}", args=[order.pk])).status_code == 405
    assert client_owner.get(reverse("orders:order_batch_renew")).status_code == 405


def test_catalogue_and_order_pages_show_the_russian_names_staff_wrote(client_owner, customer, fund):
    from accounts.models import Customer
    from orders.models import ProductType

    fund(customer, "100.00")
    plan = PlanFactory(name="VPS Small", name_ru="VPS Малый")
    ProductType.objects.filter(pk=plan.product_type_id).update(name="Virtual servers", name_ru="Виртуальные серверы",
                                                               description="Fast.", description_ru="Быстрые.")
    PlanFactory(name="VPS Untranslated", product_type=plan.product_type)  # no Russian name
    order = placing.order_place(customer=customer, actor=None, plan=plan, period_months=1, options={}, idempotency_key="ru").order

    english = client_owner.get(reverse("orders:catalogue")).content.decode()
    assert "VPS Small" in english and "Virtual servers" in english and "Fast." in english and "Малый" not in english

    Customer.objects.filter(pk=customer.pk).update(language="ru")
    russian = client_owner.get(reverse("orders:catalogue")).content.decode()
    assert "VPS Малый" in russian and "Виртуальные серверы" in russian and "Быстрые." in russian
    assert "VPS Small" not in russian and "VPS Untranslated" in russian  # no translation: the English name
    assert "VPS Малый" in client_owner.get(reverse("orders:order_detail", args=[order.pk])).content.decode()
    assert "VPS Малый" in client_owner.get(reverse("orders:order_list")).content.decode()
