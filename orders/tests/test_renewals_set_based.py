"""The set-based renewal path (billing.bulk + notifications.bulk): same rows as the one-by-one
services, a constant number of statements per chunk, and no order held back by another's funds."""
import logging
from datetime import timedelta
from decimal import Decimal

import pytest
import time_machine
from django.core import mail
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import translation

from accounts.tests.factories import UserFactory
from billing import hooks
from billing.models import Invoice, LedgerEntry, TaxRate
from billing.selectors import balance_of
from notifications.models import EmailOutbox, Notification, NotificationPreference
from notifications.services import email_content, email_deliver, email_render, notice_render
from orders.models import Order, OrderEvent, OrderRenewal
from orders.pricing import add_months
from orders.services import placing, plan_change, renewal_batch, renewing

from .factories import PlanFactory
from .test_renewals import T0, active_orders

FALLBACK = "renewing them one by one"


@pytest.fixture
def no_fallback(caplog):
    """Fails the test if a chunk left the set-based path for the one-by-one services."""
    caplog.set_level(logging.ERROR, logger="orders.services.renewal_batch")
    yield
    assert FALLBACK not in caplog.text


def customers_with_orders(count, per_customer, plan, fund, amount="100.00"):
    customers = [UserFactory().customer for _ in range(count)]
    for customer in customers:
        if amount:
            fund(customer, amount)
    return customers, active_orders(customers, plan, per_customer=per_customer, now=T0)


def run(**kwargs):
    with time_machine.travel(T0, tick=False):
        return renewal_batch.renewals_run(**kwargs)


@pytest.fixture
def only_orders_paid_handlers(monkeypatch):
    """Billing's paid-invoice registry as OrdersConfig.ready() leaves it (other tests add handlers)."""
    monkeypatch.setattr(hooks, "_invoice_paid_handlers", {
        Invoice.Kind.ORDER: [placing.on_order_invoice_paid], Invoice.Kind.RENEWAL: [renewing.on_renewal_invoice_paid],
        Invoice.Kind.PLAN_CHANGE: [plan_change.on_plan_change_invoice_paid]})


@pytest.mark.django_db
def test_statements_per_chunk_do_not_grow_with_orders_or_customers(currencies, fund, no_fallback,
                                                                    only_orders_paid_handlers):
    plan = PlanFactory()
    customers_with_orders(1, 1, plan, fund)
    run()  # warm-up: provider accounts and the invoice counter exist from now on

    def statements(customers, per_customer, chunk_size=20):
        customers_with_orders(customers, per_customer, plan, fund)
        with CaptureQueriesContext(connection) as queries:
            summary = run(chunk_size=chunk_size)
        assert summary.renewed == customers * per_customer and summary.unpaid == 0
        return len(queries)

    # Pinned. Per chunk: claim (orders, their customers, their plans), add-ons held, renewal rows, promo-code
    # uses, counter block, invoices, lines, balance locks, batch slot, ledger transactions, the charges'
    # funding (the debit legs' ids, queue heads, credits left, rows), cached balances, renewal/order updates,
    # events, one pending notice batch per kind, transaction and savepoint (30); then, after commit, both
    # batches delivered in one transaction (batches, customers, per kind owners, notifications and email
    # ids, the renewed kind's preferences, delete, savepoint pairs of the transaction and of each batch: 15) and
    # the empty look for more (3). Per run:
    # the last, empty claim. The legs and the emails go in by COPY, which Django's query log does not see.
    per_chunk, per_run = 48, 3
    assert statements(customers=20, per_customer=1) == per_run + per_chunk
    assert statements(customers=5, per_customer=4) == per_run + per_chunk  # nothing per customer
    assert statements(customers=30, per_customer=2) == per_run + 3 * per_chunk  # nothing per order
    call_command("audit_ledger")


@pytest.mark.django_db
def test_a_customer_without_funds_does_not_hold_back_the_chunk(currencies, fund, no_fallback):
    plan = PlanFactory()
    rich, _ = customers_with_orders(1, 3, plan, fund, amount="100.00")
    poor, _ = customers_with_orders(1, 3, plan, fund, amount="")
    partly, _ = customers_with_orders(1, 3, plan, fund, amount="25.00")  # two of three 10.00 renewals
    summary = run(chunk_size=50)
    assert (summary.renewed, summary.unpaid, summary.chunks) == (5, 4, 1)

    def renewed(customer):
        return list(OrderRenewal.objects.filter(order__customer=customer).order_by("order_id")
                    .values_list("status", flat=True))

    assert renewed(rich[0]) == ["paid"] * 3
    assert renewed(poor[0]) == ["pending"] * 3
    assert renewed(partly[0]) == ["paid", "paid", "pending"]  # oldest orders first
    assert balance_of(rich[0]) == Decimal("70.00") and balance_of(partly[0]) == Decimal("5.00")
    assert balance_of(poor[0]) == Decimal("0.00")
    # Every renewal got its invoice, numbered without a gap, paid or not.
    invoices = Invoice.objects.filter(kind=Invoice.Kind.RENEWAL).order_by("sequence")
    sequences = [i.sequence for i in invoices]
    assert sequences == list(range(sequences[0], sequences[0] + 9))
    assert [i.status for i in invoices if i.customer_id == poor[0].pk] == ["unpaid"] * 3
    assert Notification.objects.filter(customer=poor[0], kind="renewal_failed").count() == 3
    assert Notification.objects.filter(customer=poor[0], kind="invoice_issued").count() == 3
    assert not Notification.objects.filter(customer=poor[0], kind="service_renewed").exists()
    call_command("audit_ledger")

    # Money arrives: the next run pays the open invoices (no second invoice for the period).
    fund(poor[0], "50.00")
    fund(partly[0], "50.00")
    summary = run(chunk_size=50)
    assert (summary.renewed, summary.unpaid) == (4, 0)
    assert Invoice.objects.filter(kind=Invoice.Kind.RENEWAL).count() == 9
    assert not Invoice.objects.filter(kind=Invoice.Kind.RENEWAL).exclude(status="paid").exists()
    assert Notification.objects.filter(customer=poor[0], kind="invoice_issued").count() == 3
    assert Order.objects.filter(current_period=2).count() == 9
    call_command("audit_ledger")


@pytest.mark.django_db
def test_rows_are_the_ones_the_services_write(currencies, fund, no_fallback):
    TaxRate.objects.create(country="DE", percent=Decimal("19"), label="VAT")
    plan = PlanFactory(name="VPS <S> & Co")  # escaped in HTML bodies, as notify() escapes it
    (customer,), (order,) = customers_with_orders(1, 1, plan, fund)
    russian, (order_ru,) = customers_with_orders(1, 1, plan, fund)
    russian = russian[0]
    russian.language = "ru"
    russian.save()
    NotificationPreference.objects.create(customer=customer, kind="service_renewed", email_enabled=False)
    assert run().renewed == 2

    order.refresh_from_db()
    assert order.current_period == 2 and order.anchor_months == 2
    assert order.expires_at == add_months(order.anchor_at, 2)  # Dec 31 + 2 months = Feb 28, clamped
    renewal = OrderRenewal.objects.get(order=order)
    assert renewal.status == "paid" and renewal.starts_at == T0 and renewal.ends_at == order.expires_at
    invoice = Invoice.objects.get(pk=renewal.invoice_id)
    assert (invoice.subtotal, invoice.tax_amount, invoice.total, invoice.status) == (
        Decimal("10.00"), Decimal("1.90"), Decimal("11.90"), "paid")
    assert invoice.tax_label == "VAT 19%" and invoice.payer_country == "DE" and invoice.payer_name
    assert invoice.idempotency_key == f"order:{order.pk}:renewal:{renewal.pk}"
    assert invoice.lines.get().description == f"VPS <S> & Co, order #{order.pk}: 1 month(s)"
    legs = list(LedgerEntry.objects.filter(transaction__invoice=invoice).order_by("pk")
                .values_list("account__code", "amount"))
    # The provider side goes to the worker's slot of batch sub-accounts (no shared hot rows).
    assert legs == [(f"customer:{customer.pk}:EUR", Decimal("-11.90")), ("holding:batch1:EUR", Decimal("11.90")),
                    ("holding:batch1:EUR", Decimal("-11.90")), ("revenue:batch1:EUR", Decimal("10.00")),
                    ("tax:batch1:EUR", Decimal("1.90"))]
    assert balance_of(customer) == Decimal("88.10")
    event = OrderEvent.objects.get(order=order, action="renewed")
    assert (event.source, event.from_status, event.to_status, event.details["period"]) == ("payment", "active", "active", 2)

    # Notifications: exactly what notify() renders, in each customer's language.
    for who, kind, link in [(customer, "invoice_issued", f"/billing/invoices/{invoice.pk}/"),
                            (customer, "service_renewed", f"/orders/{order.pk}/"),
                            (russian, "service_renewed", f"/orders/{order_ru.pk}/")]:
        notification = Notification.objects.get(customer=who, kind=kind)
        assert notification.link == link
        with translation.override(who.language):
            expected = notice_render(kind=kind, context=notification.context, link=link)
        assert (notification.subject, notification.body_text, notification.body_html) == expected
    assert "&lt;S&gt; &amp; Co" in Notification.objects.get(customer=customer, kind="service_renewed").body_html
    # Emails: the mandatory invoice notice always, the renewal notice unless switched off.
    def emailed(who):
        return sorted(EmailOutbox.objects.filter(customer=who).exclude(kind="payment_received").values_list("kind", flat=True))

    assert emailed(customer) == ["invoice_issued"]
    assert emailed(russian) == ["invoice_issued", "service_renewed"]
    email = EmailOutbox.objects.get(customer=russian, kind="service_renewed")
    notification = Notification.objects.get(customer=russian, kind="service_renewed")
    owner = russian.users.order_by("pk").first()
    with translation.override("ru"):
        text, html = email_render(kind="service_renewed", subject=notification.subject, body_text=notification.body_text,
                                   body_html=notification.body_html, link=notification.link, owner=owner)
    # The outbox row refers to the notification; the email is rendered when it is sent, and sends
    # exactly what notify() would have stored.
    assert (email.notification_id, email.body_text, email.body_html) == (notification.pk, "", "")
    assert email_content(email) == (notification.subject, text, html)
    mail.outbox.clear()
    assert email_deliver(email_id=email.pk).outcome == "sent"
    (sent,) = mail.outbox
    assert (sent.subject, sent.body, sent.alternatives[0][0], sent.to) == (notification.subject, text, html, [owner.email])
    call_command("audit_ledger")


@pytest.mark.django_db
def test_a_renewal_in_another_currency_than_the_account_takes_the_one_by_one_path(currencies, fund):
    plan = PlanFactory()
    (customer,), (order,) = customers_with_orders(1, 1, plan, fund, amount="")
    customer.currency = "USD"  # the account currency changed after the order was placed in EUR
    customer.save()
    fund(customer, "100.00", "USD")
    assert run().renewed == 1
    order.refresh_from_db()
    assert order.current_period == 2
    assert balance_of(customer) < Decimal("100.00")
    call_command("audit_ledger")


@pytest.mark.django_db
def test_running_again_renews_nothing_twice(currencies, fund, no_fallback):
    plan = PlanFactory()
    customers_with_orders(3, 2, plan, fund)
    assert run(chunk_size=4).renewed == 6
    assert run(chunk_size=4).renewed == 0
    later = T0 + timedelta(days=28)
    with time_machine.travel(later, tick=False):
        assert renewal_batch.renewals_run().renewed == 6  # the next period, once
    assert OrderRenewal.objects.filter(status="paid").count() == 12
    assert Notification.objects.filter(kind="service_renewed").count() == 12
    call_command("audit_ledger")


@pytest.mark.django_db
def test_other_paid_invoice_handlers_still_run_inside_the_transaction(currencies, fund, no_fallback,
                                                                      only_orders_paid_handlers):
    seen = []
    hooks.register_invoice_paid_handler(Invoice.Kind.RENEWAL, lambda invoice: seen.append((invoice.pk, invoice.status)))
    customers_with_orders(2, 2, PlanFactory(), fund)
    assert run().renewed == 4
    paid = set(Invoice.objects.filter(kind=Invoice.Kind.RENEWAL).values_list("pk", flat=True))
    assert sorted(seen) == sorted((pk, "paid") for pk in paid)
