import io

import pytest

from orders.models import Order, Plan


@pytest.mark.django_db
def test_demo_seed_builds_a_catalogue_and_two_active_orders(owner):
    from billing import demo as billing_demo
    from orders import demo

    out = io.StringIO()
    billing_demo.seed(customer=owner.customer, owner=owner, stdout=out)
    demo.seed(customer=owner.customer, owner=owner, stdout=out)
    assert Plan.objects.filter(product_type__code="dedicated").count() == 2
    orders = Order.objects.filter(customer=owner.customer)
    assert orders.count() == 2 and all(o.status == Order.Status.ACTIVE and o.ip for o in orders)
