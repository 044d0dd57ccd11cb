"""An EU private customer whose country has no VAT rate configured cannot order: the review and the
confirmation show a clear form error, and no order, invoice or charge is made (never a 0% invoice)."""
from decimal import Decimal

import pytest
from django.urls import reverse

from billing.models import Invoice
from billing.selectors import balance_of
from orders.models import Order

from .factories import PlanFactory

pytestmark = pytest.mark.django_db


def test_order_is_refused_when_no_vat_rate_is_configured_for_the_customers_country(settings, client, owner, customer, fund):
    settings.BILLING_SELLER_COUNTRY = "NL"
    customer.country = "AT"
    customer.save()
    fund(customer, "100.00")
    plan = PlanFactory()
    data = {"period_months": 1, "request_key": "b" * 32, "hostname": "web1.example.com",
            "os_image": str(plan.product_type.os_images.first().pk), "location": "ams"}
    client.force_login(owner)

    for url in (reverse("orders:order_new", args=[plan.pk]), reverse("orders:order_confirm", args=[plan.pk])):
        response = client.post(url, data)
        assert response.status_code == 200
        assert "no VAT rate is configured" in " ".join(response.context["form"].non_field_errors())

    assert not Order.objects.exists() and not Invoice.objects.exists()
    assert balance_of(customer) == Decimal("100.00")


def test_renewal_job_refuses_only_the_customer_without_a_rate(settings, currencies):
    """The refused customer's renewal is an error for staff; the rest of the chunk renews as usual."""
    import time_machine

    from accounts.tests.factories import UserFactory
    from billing.services.payments import payment_record
    from billing.tests.factories import TaxRateFactory
    from orders.models import OrderRenewal
    from orders.services import renewal_batch

    from .test_renewals import T0, active_orders

    settings.BILLING_SELLER_COUNTRY = "NL"
    TaxRateFactory(country="DE", percent=Decimal("19"))
    german, austrian = UserFactory().customer, UserFactory().customer
    austrian.country = "AT"
    austrian.save()
    for customer in (german, austrian):
        payment_record(idempotency_key=f"tax-job:{customer.pk}", customer=customer, amount=Decimal("100.00"),
                       currency="EUR", method="bank_transfer")
    active_orders([german, austrian], PlanFactory(), per_customer=1, now=T0)

    with time_machine.travel(T0, tick=False):
        summary = renewal_batch.renewals_run()

    assert (summary.renewed, summary.errors) == (1, 1)
    assert OrderRenewal.objects.get(order__customer=german).status == OrderRenewal.Status.PAID
    assert balance_of(german) == Decimal("88.10") and balance_of(austrian) == Decimal("100.00")
    assert not Invoice.objects.filter(customer=austrian, kind=Invoice.Kind.RENEWAL).exists()
