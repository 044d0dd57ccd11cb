"""Add-on pages: the order form's live price summary (htmx) and review with add-ons, the service's
add-ons page (quote, then change), access by role and owner, the orders table's add-ons at a fixed
query count, and bad input as form errors."""
from datetime import datetime, timezone as dt_timezone
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
from orders.models import AddonChange, Order, OrderAddon, PromoCode
from orders.services import placing

from .factories import PlanFactory, order_options, standard_addons

pytestmark = pytest.mark.django_db

JAN31 = datetime(2026, 1, 31, 12, 0, tzinfo=dt_timezone.utc)
FEB14 = datetime(2026, 2, 14, 12, 0, tzinfo=dt_timezone.utc)


@pytest.fixture
def client_owner(client, owner):
    client.force_login(owner)
    return client


def order_data(plan, **extra):
    return {"period_months": 1, "request_key": "a" * 32, "hostname": "web1.example.com",
            "os_image": str(plan.product_type.os_images.first().pk), "location": "ams", **extra}


def active(customer, plan, addons=None, key="k1"):
    with time_machine.travel(JAN31, tick=False):
        return placing.order_place(customer=customer, actor=None, plan=plan, period_months=1, options=order_options(plan),
                                   idempotency_key=key, addons={a.pk: n for a, n in (addons or {}).items()}).order


def test_order_form_summary_follows_the_addons_and_the_promo_code(client_owner, customer, currencies):
    plan = PlanFactory()
    addons = standard_addons(plan)
    PromoCode.objects.create(code="ADDON20", kind=PromoCode.Kind.PERCENT, value=Decimal("20"), applies_to_plan=False,
                             applies_to_addons=True)
    page = client_owner.get(reverse("orders:order_new", args=[plan.pk]))
    html = page.content.decode()
    assert f'name="addon_{addons["ram"].pk}"' in html and 'hx-get="%s"' % reverse("orders:order_summary", args=[plan.pk]) in html
    url = reverse("orders:order_summary", args=[plan.pk])
    summary = client_owner.get(url, {"period_months": 1, f"addon_{addons['ram'].pk}": 2, f"addon_{addons['backups'].pk}": 1},
                               HTTP_HX_REQUEST="true")
    # 10.00 + 6.00 + 4.00 = 20.00, no tax configured.
    assert summary.status_code == 200 and summary.context["total"] == Decimal("20.00")
    assert "Extra RAM: 4 GB" in summary.content.decode()
    with_code = client_owner.get(url, {"period_months": 1, f"addon_{addons['ram'].pk}": 2, "promo_code": "addon20"},
                                 HTTP_HX_REQUEST="true")
    assert with_code.context["total"] == Decimal("14.80")  # 16.00 − 20 % of 6.00
    unknown = client_owner.get(url, {"period_months": 1, "promo_code": "NOPE"}, HTTP_HX_REQUEST="true")
    assert unknown.context["total"] == Decimal("10.00") and "There is no such promo code." in unknown.content.decode()
    bad = client_owner.get(url, {"period_months": 1, f"addon_{addons['ram'].pk}": 9}, HTTP_HX_REQUEST="true")
    assert bad.status_code == 200 and bad.context["total"] == Decimal("10.00")  # an invalid choice is not priced


def test_review_and_confirm_place_the_order_with_its_addons(client_owner, customer, fund):
    plan = PlanFactory()
    addons = standard_addons(plan)
    fund(customer, "100.00")
    data = order_data(plan, **{f"addon_{addons['ipv4'].pk}": 2, f"addon_{addons['panel'].pk}": 1})
    review = client_owner.post(reverse("orders:order_new", args=[plan.pk]), data)
    # 10.00 + 2 × 2.50 + 7.00 = 22.00.
    assert review.status_code == 200 and review.context["total"] == Decimal("22.00")
    assert 'data-testid="summary-addon-%s"' % addons["panel"].pk in review.content.decode()
    assert not Order.objects.exists()
    response = client_owner.post(reverse("orders:order_confirm", args=[plan.pk]), data)
    order = Order.objects.get()
    assert response.status_code == 302 and order.addons_price == Decimal("12.00")
    assert balance_of(customer) == Decimal("78.00")


@pytest.mark.parametrize("value", ["9", "-1", "x", "1.5"])
def test_bad_addon_input_on_the_order_form_is_a_form_error(client_owner, customer, fund, value):
    plan = PlanFactory()
    ram = standard_addons(plan)["ram"]
    fund(customer, "100.00")
    for name in ("order_new", "order_confirm"):
        response = client_owner.post(reverse(f"orders:{name}", args=[plan.pk]), order_data(plan, **{f"addon_{ram.pk}": value}))
        assert response.status_code == 200 and f"addon_{ram.pk}" in response.context["form"].errors
    assert not Order.objects.exists() and not Invoice.objects.exists()


def test_another_plans_addon_posted_to_the_order_form_is_ignored(client_owner, customer, fund):
    plan = PlanFactory()
    foreign = standard_addons(PlanFactory())["ram"]
    fund(customer, "100.00")
    client_owner.post(reverse("orders:order_confirm", args=[plan.pk]), order_data(plan, **{f"addon_{foreign.pk}": 1}))
    order = Order.objects.get()
    assert not OrderAddon.objects.filter(order=order).exists() and order.addons_price == 0


def test_addons_page_quotes_then_adds_and_removes(client_owner, customer, fund):
    plan = PlanFactory()
    addons = standard_addons(plan)
    fund(customer, "100.00")
    order = active(customer, plan, {addons["backups"]: 1})
    url = reverse("orders:order_addons", args=[order.pk])
    with time_machine.travel(FEB14, tick=False):
        page = client_owner.get(url)
        assert page.status_code == 200 and len(page.context["rows"]) == 6
        quote = client_owner.get(url, {"addon": addons["ram"].pk, "quantity": 2})
        assert quote.context["quote"].amount == Decimal("3.00")  # 6.00 × 14/28
        assert 'data-testid="addon-amount"' in quote.content.decode()
        assert not AddonChange.objects.exists()  # a quote changes nothing
        done = client_owner.post(url, {"addon": addons["ram"].pk, "quantity": 2, "expected_amount": "3.00"})
        assert done.status_code == 302 and OrderAddon.objects.get(order=order, addon=addons["ram"]).quantity == 2
        stale = client_owner.post(url, {"addon": addons["backups"].pk, "quantity": 0, "expected_amount": "9.99"})
        assert stale.status_code == 200 and "The price changed" in stale.content.decode()
        removed = client_owner.post(url, {"addon": addons["backups"].pk, "quantity": 0, "expected_amount": "2.00"})
        assert removed.status_code == 302
    assert not OrderAddon.objects.filter(order=order, addon=addons["backups"]).exists()
    # 100.00 − 14.00 (order) − 3.00 (RAM) + 2.00 (backups credit, 4.00 × 14/28).
    assert balance_of(customer) == Decimal("85.00")
    detail = client_owner.get(reverse("orders:order_detail", args=[order.pk])).content.decode()
    assert 'data-testid="held-addon-%s"' % addons["ram"].pk in detail and "Extra RAM: 4 GB" in detail


@pytest.mark.parametrize("params", [{"addon": "x", "quantity": 1}, {"addon": 1, "quantity": "-1"}, {"quantity": "2"}])
def test_bad_input_on_the_addons_page_changes_nothing(client_owner, customer, fund, params):
    plan = PlanFactory()
    addons = standard_addons(plan)
    fund(customer, "100.00")
    order = active(customer, plan)
    if params.get("addon") == 1:
        params = {**params, "addon": addons["ram"].pk}
    response = client_owner.post(reverse("orders:order_addons", args=[order.pk]), params)
    assert response.status_code in (200, 404)
    assert not AddonChange.objects.exists() and balance_of(customer) == Decimal("90.00")


def test_another_customers_service_is_404_and_roles_without_billing_cannot_change(client, customer, fund):
    plan = PlanFactory()
    addons = standard_addons(plan)
    fund(customer, "100.00")
    order = active(customer, plan)
    url = reverse("orders:order_addons", args=[order.pk])
    client.force_login(UserFactory())  # another customer's owner
    assert client.get(url).status_code == 404
    assert client.post(url, {"addon": addons["ram"].pk, "quantity": 1}).status_code == 404
    client.force_login(UserFactory(customer=customer, role=User.Role.TECHNICAL))
    with time_machine.travel(FEB14, tick=False):
        assert client.get(url).status_code == 200
        assert client.post(url, {"addon": addons["ram"].pk, "quantity": 1, "expected_amount": "1.50"}).status_code == 403
    client.force_login(UserFactory(customer=customer, role=User.Role.FINANCE))  # no services area, as for plan changes
    assert client.get(url).status_code == 403
    assert client.post(url, {"addon": addons["ram"].pk, "quantity": 1}).status_code == 403
    assert not AddonChange.objects.exists() and balance_of(customer) == Decimal("90.00")


def test_orders_table_shows_addons_at_the_same_query_count_for_5_and_40_services(client_owner, customer, fund):
    plan = PlanFactory()
    addons = standard_addons(plan)
    fund(customer, "5000.00")
    for i in range(5):
        active(customer, plan, {addons["ram"]: 1, addons["backups"]: 1}, key=f"a{i}")
    url = reverse("orders:order_list")
    client_owner.get(url)  # warm caches
    with CaptureQueriesContext(connection) as small:
        first = client_owner.get(url)
    html = first.content.decode()
    assert "Extra RAM: 2 GB" in html and "€17.00" in html  # 10.00 + 3.00 + 4.00 a period
    for i in range(35):
        active(customer, plan, {addons["ipv4"]: 1, addons["panel"]: 1}, key=f"b{i}")
    with CaptureQueriesContext(connection) as large:
        response = client_owner.get(url, {"sort": "-cost"})
    assert len(response.context["rows"]) == 25
    assert len(small.captured_queries) == len(large.captured_queries) <= 13
    costs = [row["period_cost"] for row in response.context["rows"]]
    assert costs == sorted(costs, reverse=True) and costs[0] == Decimal("19.50")  # 10.00 + 2.50 + 7.00


def test_orders_table_row_prints_the_same_from_compiled_rows_and_from_a_searchs_orm_rows(client_owner, customer, fund):
    """The page's rows are dicts, read by a compiled query or (a search) the ORM: both print a row alike, and
    as the order's model prints it (add-on labels, status badge, plan name, days left, the pay link), in English and Russian."""
    import re

    from django.utils import translation

    from accounts.content import localized
    from accounts.models import Customer
    from orders.selectors import days_remaining
    from orders.templatetags.order_tags import order_status_badge

    plan = PlanFactory(name_ru="ВПС Малый")
    addons = standard_addons(plan)
    pending = active(customer, plan, {addons["ram"]: 2, addons["backups"]: 1}, key="p")  # no balance: its invoice waits
    fund(customer, "100.00")
    running = active(customer, plan, {addons["ipv4"]: 2, addons["ram"]: 1}, key="r")
    Order.objects.filter(pk=running.pk).update(cancel_at_period_end=True)
    assert Order.objects.get(pk=pending.pk).status == Order.Status.PENDING and not Order.objects.get(pk=pending.pk).paid_at
    url = reverse("orders:order_list")
    for language in ("en", "ru"):
        Customer.objects.filter(pk=customer.pk).update(language=language)
        for order_id in (pending.pk, running.pk):
            row = re.compile(rf'<tr data-testid="order-row-{order_id}">.*?</tr>', re.S)
            with time_machine.travel(FEB14, tick=False):
                plain = row.search(client_owner.get(url).content.decode()).group()
                searched = row.search(client_owner.get(url, {"q": f"#{order_id}"}).content.decode()).group()
            assert plain == searched, language
            order = Order.objects.select_related("plan").get(pk=order_id)
            with translation.override(language):
                labels = [addon.label for addon in order.addons.select_related("addon").order_by("addon__sort_order", "addon_id")]
                assert f'data-testid="order-addons">+ {", ".join(labels)}</div>' in plain
                assert f"<td>{localized(order.plan, 'name')}<div" in plain and str(order_status_badge(order)) in plain
            days = days_remaining(order, FEB14)
            assert (f">{days}</span>" if days is not None else 'data-testid="order-days">—<') in plain and (days is None) == (order_id == pending.pk)
            assert (reverse("billing:invoice_detail", args=[order.invoice_id]) in plain) == (order_id == pending.pk)
        assert ("Cancels at period end" if language == "en" else "") in plain
    assert "Дополнительная память: 2 ГБ" in plain and "ВПС Малый" in plain


def test_russian_customer_sees_the_addons_and_gets_invoice_lines_in_russian(client_owner, customer, fund):
    from accounts.models import Customer

    plan = PlanFactory()
    addons = standard_addons(plan)  # Extra RAM has a Russian name
    Customer.objects.filter(pk=customer.pk).update(language="ru")
    customer.refresh_from_db()
    fund(customer, "100.00")
    order = active(customer, plan, {addons["ram"]: 2})
    invoice = Invoice.objects.get(pk=order.invoice_id)
    assert invoice.lines.filter(description=f"Дополнительная память: 4 ГБ, заказ №{order.pk}: 1 мес.").exists()
    with time_machine.travel(FEB14, tick=False):
        page = client_owner.get(reverse("orders:order_addons", args=[order.pk]), {"addon": addons["ipv4"].pk, "quantity": 2})
    html = page.content.decode()
    assert "Опции заказа" in html and "Дополнительная память" in html and "Подключить" in html and "2 адреса" in html
    detail = client_owner.get(reverse("orders:order_detail", args=[order.pk])).content.decode()
    assert "Изменить опции" in detail and "Дополнительная память: 4 ГБ" in detail
