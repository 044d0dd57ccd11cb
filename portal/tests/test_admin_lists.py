"""The back office's main list pages cost the same number of queries for 5 rows as for 50."""
from decimal import Decimal
from itertools import count

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from accounts.tests.factories import StaffUserFactory, UserFactory
from billing.models import Invoice
from billing.services.invoices import LineInput, invoice_issue
from billing.services.payments import payment_record
from billing.tests.factories import make_currencies
from notifications.models import EmailOutbox
from tickets.tests.factories import TicketFactory

from .test_backoffice import active_order

pytestmark = pytest.mark.usefixtures("departments")
_keys = count()


def add_customers(n):
    for _ in range(n):
        UserFactory()


def add_invoices(n):
    customer = UserFactory().customer
    for _ in range(n):
        invoice_issue(customer=customer, kind=Invoice.Kind.ORDER,
                      lines=[LineInput(description="VPS", quantity=1, unit_price=Decimal("5.00"))])


def add_payments(n):
    for _ in range(n):
        customer = UserFactory().customer
        payment_record(idempotency_key=f"list:{next(_keys)}", customer=customer,
                       amount=Decimal("5.00"), currency="EUR", method="bank_transfer")


def add_orders(n):
    for _ in range(n):
        active_order(UserFactory().customer)


def add_tickets(n):
    for _ in range(n):
        TicketFactory()


def add_outbox(n):
    customer = UserFactory().customer
    EmailOutbox.objects.bulk_create(EmailOutbox(customer=customer, recipient=f"r{i}@example.com", subject="s",
                                                body_text="b", status=EmailOutbox.Status.FAILED) for i in range(n))


def add_jobs(n):
    from orders.models import ProvisioningJob

    for _ in range(n):
        order = active_order(UserFactory().customer)
        ProvisioningJob.objects.create(order=order, action="suspend", module="libvirt", idempotency_key=f"list:{order.pk}",
                                       source="system", next_attempt_at=order.activated_at or order.anchor_at,
                                       requested_by=UserFactory(customer=None, is_staff=True))


def add_nodes(n):
    from orders.models import HypervisorNode

    for _ in range(n):
        HypervisorNode.objects.create(name=f"node-{next(_keys)}", uri="qemu:///system", cpu_capacity=8,
                                      ram_capacity_mib=8192, disk_capacity_gib=100, network="default")


PAGES = {
    "accounts_customer": add_customers,
    "accounts_user": add_customers,
    "billing_invoice": add_invoices,
    "billing_payment": add_payments,
    "orders_order": add_orders,
    "tickets_ticket": add_tickets,
    "notifications_emailoutbox": add_outbox,
    "orders_provisioningjob": add_jobs,
    "orders_hypervisornode": add_nodes,
}


def changelist_queries(client, name: str) -> tuple[int, int]:
    url = reverse(f"admin:{name}_changelist")
    client.get(url)
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url)
    assert response.status_code == 200
    return len(captured), response.context["cl"].result_count


@pytest.mark.django_db
@pytest.mark.parametrize("name", list(PAGES))
def test_changelist_query_count_is_the_same_for_5_and_50_rows(client, name):
    make_currencies()
    client.force_login(StaffUserFactory())
    PAGES[name](5)
    small, _rows = changelist_queries(client, name)
    PAGES[name](45)
    large, rows = changelist_queries(client, name)
    assert rows >= 50
    assert small == large


@pytest.mark.django_db
def test_customer_list_names_private_persons_by_their_owner_and_companies_by_company_name(client):
    from accounts.models import Customer

    client.force_login(StaffUserFactory())
    person = UserFactory(first_name="Maria", last_name="Petrova", customer__profile_type=Customer.ProfileType.PRIVATE)
    company = UserFactory(customer__profile_type=Customer.ProfileType.COMPANY, customer__company_name="Acme B.V.")
    response = client.get(reverse("admin:accounts_customer_changelist"))
    rows = {row.pk: row for row in response.context["cl"].result_list}
    admin_obj = response.context["cl"].model_admin
    assert admin_obj.display_name_column(rows[person.customer_id]) == "Maria Petrova"
    assert admin_obj.display_name_column(rows[company.customer_id]) == "Acme B.V."
    html = response.content.decode()
    assert "Maria Petrova" in html and "Acme B.V." in html
