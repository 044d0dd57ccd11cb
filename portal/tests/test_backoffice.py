"""Back office: every staff action goes through its service, leaves ledger/audit rows naming the
staff user, and is refused to a staff user without the back-office permission."""
from datetime import timedelta
from decimal import Decimal
from itertools import count

import pytest
from django.contrib.auth.models import Permission
from django.contrib.auth.hashers import make_password
from django.urls import reverse
from django.utils import timezone

from accounts.models import ActivityEvent, Customer
from accounts.tests.factories import StaffUserFactory, UserFactory
from billing.models import CreditNote, Invoice, LedgerTransaction
from billing.selectors import balance_of
from billing.services.invoices import LineInput, invoice_issue, invoice_pay_from_balance
from billing.services.payments import payment_record
from notifications.models import EmailOutbox
from orders.models import Order, ProvisioningJob
from orders.tests.factories import PlanFactory

_keys = count()


def grant(user, *perms: str):
    for perm in perms:
        app_label, codename = perm.split(".")
        user.user_permissions.add(Permission.objects.get(content_type__app_label=app_label, codename=codename))
    return type(user).objects.get(pk=user.pk)  # fresh permission cache


def staff(*perms: str):
    return grant(StaffUserFactory(is_superuser=False), *perms)


def run_action(client, user, model: str, action: str, ids, **data):
    client.force_login(user)
    payload = {"action": action, "_selected_action": [str(i) for i in ids], "index": "0", "apply": "1", **data}
    return client.post(reverse(f"admin:{model}_changelist"), payload, follow=True)


def audit(action: str, actor) -> ActivityEvent | None:
    return ActivityEvent.objects.filter(action=action, actor=actor).first()


def fund(customer, amount):
    payment_record(idempotency_key=f"bo-fund:{next(_keys)}", customer=customer, amount=Decimal(amount),
                   currency=customer.currency, method="bank_transfer")


def service_invoice(customer, amount="20.00"):
    return invoice_issue(customer=customer, kind=Invoice.Kind.ORDER,
                         lines=[LineInput(description="VPS", quantity=1, unit_price=Decimal(amount))])


def active_order(customer):
    now = timezone.now()
    return Order.objects.create(
        customer=customer, plan=PlanFactory(), period_months=1, price=Decimal("10.00"), currency=customer.currency,
        status=Order.Status.ACTIVE, provisioning=Order.Provisioning.DONE, ip="192.0.2.10", anchor_at=now - timedelta(days=5),
        anchor_months=1, period_started_at=now - timedelta(days=5), expires_at=now + timedelta(days=25), current_period=1)


CUSTOMER_VIEW = ("accounts.view_customer", "accounts.change_customer")


# --- customers --------------------------------------------------------------------------------------

@pytest.mark.django_db
def test_verify_company_needs_the_permission_and_is_audited(client):
    customer = UserFactory(customer__profile_type=Customer.ProfileType.COMPANY, customer__company_name="ACME",
                           customer__verification_status=Customer.Verification.PENDING).customer
    denied = staff(*CUSTOMER_VIEW)
    run_action(client, denied, "accounts_customer", "verify_company", [customer.pk])
    customer.refresh_from_db()
    assert customer.verification_status == Customer.Verification.PENDING
    allowed = staff(*CUSTOMER_VIEW, "portal.verify_company")
    run_action(client, allowed, "accounts_customer", "verify_company", [customer.pk])
    customer.refresh_from_db()
    assert customer.verification_status == Customer.Verification.VERIFIED
    assert audit("company_verified", allowed).customer_id == customer.pk


@pytest.mark.django_db
def test_reject_company_with_a_reason(client):
    customer = UserFactory(customer__profile_type=Customer.ProfileType.COMPANY, customer__company_name="ACME",
                           customer__verification_status=Customer.Verification.PENDING).customer
    allowed = staff(*CUSTOMER_VIEW, "portal.verify_company")
    run_action(client, allowed, "accounts_customer", "reject_company", [customer.pk], reason="VAT number is not valid")
    customer.refresh_from_db()
    assert customer.verification_status == Customer.Verification.REJECTED
    assert audit("company_rejected", allowed) is not None


@pytest.mark.django_db
def test_credit_and_debit_the_balance_with_a_reason(client, currencies):
    customer = UserFactory().customer
    denied = staff(*CUSTOMER_VIEW)
    run_action(client, denied, "accounts_customer", "adjust_balance", [customer.pk], amount="25.00", reason="x", nonce="a")
    assert balance_of(customer) == 0
    allowed = staff(*CUSTOMER_VIEW, "portal.adjust_balance")
    response = run_action(client, allowed, "accounts_customer", "adjust_balance", [customer.pk],
                          amount="25.00", reason="Compensation for downtime", nonce="n1")
    assert "now €25.00" in response.content.decode()
    # The same form posted twice (same nonce) credits once.
    run_action(client, allowed, "accounts_customer", "adjust_balance", [customer.pk],
               amount="25.00", reason="Compensation for downtime", nonce="n1")
    assert balance_of(customer) == Decimal("25.00")
    tx = LedgerTransaction.objects.get(kind=LedgerTransaction.Kind.ADJUSTMENT)
    assert tx.created_by == allowed and tx.memo == "Compensation for downtime"
    assert audit("billing.adjustment", allowed).details["amount"] == "25.00"
    run_action(client, allowed, "accounts_customer", "adjust_balance", [customer.pk], amount="-5.00", reason="Fee", nonce="n2")
    assert balance_of(customer) == Decimal("20.00")


@pytest.mark.django_db
@pytest.mark.parametrize("amount", ["0", "1.001", "abc", "-1000.00"])
def test_bad_adjustments_change_nothing(client, currencies, amount):
    customer = UserFactory().customer
    allowed = staff(*CUSTOMER_VIEW, "portal.adjust_balance")
    run_action(client, allowed, "accounts_customer", "adjust_balance", [customer.pk], amount=amount, reason="r", nonce="z")
    assert balance_of(customer) == 0
    assert not LedgerTransaction.objects.filter(kind=LedgerTransaction.Kind.ADJUSTMENT).exists()


@pytest.mark.django_db
def test_clear_ip_restriction(client):
    customer = UserFactory(customer__ip_allowlist="203.0.113.7").customer
    run_action(client, staff(*CUSTOMER_VIEW), "accounts_customer", "clear_ip_restriction", [customer.pk])
    customer.refresh_from_db()
    assert customer.ip_allowlist == "203.0.113.7"
    allowed = staff(*CUSTOMER_VIEW, "portal.clear_ip_restriction")
    run_action(client, allowed, "accounts_customer", "clear_ip_restriction", [customer.pk])
    customer.refresh_from_db()
    assert customer.ip_allowlist == "" and audit("ip_allowlist_cleared", allowed)


@pytest.mark.django_db
def test_check_code_word(client):
    customer = UserFactory(customer__code_word_hash=make_password("blue whale")).customer
    response = run_action(client, staff(*CUSTOMER_VIEW), "accounts_customer", "check_code_word", [customer.pk],
                          candidate="blue whale")
    assert "matches" not in response.content.decode()
    allowed = staff(*CUSTOMER_VIEW, "portal.check_code_word")
    response = run_action(client, allowed, "accounts_customer", "check_code_word", [customer.pk], candidate="Blue Whale")
    assert "The code word matches." in response.content.decode()
    assert audit("code_word_checked", allowed) is not None


# --- invoices and payments ---------------------------------------------------------------------------

INVOICE_VIEW = ("billing.view_invoice", "billing.change_invoice")


@pytest.mark.django_db
def test_mark_invoice_paid_by_bank_transfer(client, currencies):
    customer = UserFactory().customer
    invoice = service_invoice(customer)
    data = {"amount": "20.00", "bank_reference": "BANK-778", "received_on": "2026-03-01"}
    run_action(client, staff(*INVOICE_VIEW), "billing_invoice", "mark_paid_by_bank_transfer", [invoice.pk], **data)
    invoice.refresh_from_db()
    assert invoice.status == Invoice.Status.UNPAID
    allowed = staff(*INVOICE_VIEW, "portal.record_bank_transfer")
    run_action(client, allowed, "billing_invoice", "mark_paid_by_bank_transfer", [invoice.pk], **data)
    run_action(client, allowed, "billing_invoice", "mark_paid_by_bank_transfer", [invoice.pk], **data)  # twice: once
    invoice.refresh_from_db()
    assert invoice.status == Invoice.Status.PAID and invoice.payments.count() == 1
    assert audit("billing.bank_transfer_recorded", allowed).details["reference"] == "BANK-778"


@pytest.mark.django_db
def test_refund_to_balance(client, currencies):
    customer = UserFactory().customer
    fund(customer, "20.00")
    invoice = service_invoice(customer)
    assert invoice_pay_from_balance(invoice=invoice)
    run_action(client, staff(*INVOICE_VIEW), "billing_invoice", "refund_to_balance", [invoice.pk])
    assert not CreditNote.objects.exists()
    allowed = staff(*INVOICE_VIEW, "portal.refund_payment")
    run_action(client, allowed, "billing_invoice", "refund_to_balance", [invoice.pk])
    assert CreditNote.objects.get(invoice=invoice).created_by == allowed
    assert balance_of(customer) == Decimal("20.00")
    assert audit("billing.refund", allowed) is not None


@pytest.mark.django_db
def test_ledger_adjust_page_needs_the_permission(client):
    client.force_login(staff("billing.view_ledgeraccount"))
    assert client.get(reverse("admin:billing_balance_adjust")).status_code == 403
    client.force_login(staff("billing.view_ledgeraccount", "portal.adjust_balance"))
    assert client.get(reverse("admin:billing_balance_adjust")).status_code == 200


# --- orders and mail ---------------------------------------------------------------------------------

ORDER_VIEW = ("orders.view_order", "orders.change_order")


@pytest.mark.django_db
def test_suspend_unsuspend_extend_terminate(client, currencies):
    customer = UserFactory().customer
    order = active_order(customer)
    run_action(client, staff(*ORDER_VIEW), "orders_order", "suspend", [order.pk], reason="Abuse report")
    order.refresh_from_db()
    assert order.status == Order.Status.ACTIVE
    allowed = staff(*ORDER_VIEW, "portal.manage_services")
    run_action(client, allowed, "orders_order", "suspend", [order.pk], reason="Abuse report")
    order.refresh_from_db()
    assert order.status == Order.Status.SUSPENDED and audit("order_suspend", allowed)
    run_action(client, allowed, "orders_order", "unsuspend", [order.pk])
    order.refresh_from_db()
    assert order.status == Order.Status.ACTIVE and audit("order_unsuspend", allowed)
    expires = order.expires_at
    run_action(client, allowed, "orders_order", "extend", [order.pk], days="3", reason="Downtime")
    order.refresh_from_db()
    assert order.expires_at == expires + timedelta(days=3) and audit("order_extend", allowed)
    run_action(client, allowed, "orders_order", "terminate", [order.pk], reason="Customer request")
    order.refresh_from_db()
    assert order.status == Order.Status.TERMINATED and audit("order_terminate", allowed)


@pytest.mark.django_db
def test_retry_failed_mail(client):
    email = EmailOutbox.objects.create(recipient="a@example.com", subject="s", body_text="b",
                                       status=EmailOutbox.Status.FAILED, attempts=5)
    perms = ("notifications.view_emailoutbox", "notifications.change_emailoutbox")
    run_action(client, staff(*perms), "notifications_emailoutbox", "retry_failed", [email.pk])
    email.refresh_from_db()
    assert email.status == EmailOutbox.Status.FAILED
    allowed = staff(*perms, "portal.retry_mail")
    run_action(client, allowed, "notifications_emailoutbox", "retry_failed", [email.pk])
    email.refresh_from_db()
    assert email.status == EmailOutbox.Status.PENDING and email.attempts == 0
    assert audit("notifications.email_retried", allowed).details == {"emails": [email.pk], "queued": 1}


# --- the customer page -------------------------------------------------------------------------------

@pytest.mark.django_db
def test_customer_page_shows_balance_and_links_with_a_fixed_query_count(client, currencies, django_assert_max_num_queries):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    admin_user = StaffUserFactory()
    client.force_login(admin_user)
    counts = []
    for n in (1, 12):
        owner = UserFactory()
        customer = owner.customer
        fund(customer, "30.00")
        for _ in range(n):
            service_invoice(customer, "1.00")
            active_order(customer)
            UserFactory(customer=customer, role="technical")
        url = reverse("admin:accounts_customer_change", args=[customer.pk])
        client.get(url)
        with CaptureQueriesContext(connection) as captured:
            html = client.get(url).content.decode()
        counts.append(len(captured))
        assert "€30.00" in html
        assert f"?customer__id__exact={customer.pk}\">Invoices ({n})" in html
        assert f"Orders ({n})" in html
        assert 'name="currency"' not in html  # read-only: changes only through billing's conversion
    assert counts[0] == counts[1]


# --- the permission matrix --------------------------------------------------------------------------

ACTIONS = [
    (Customer, "verify_company", "verify_company"), (Customer, "reject_company", "verify_company"),
    (Customer, "clear_ip_restriction", "clear_ip_restriction"), (Customer, "check_code_word", "check_code_word"),
    (Customer, "adjust_balance", "adjust_balance"), (Invoice, "refund_to_balance", "refund_payment"),
    (Invoice, "mark_paid_by_bank_transfer", "record_bank_transfer"), (Order, "suspend", "manage_services"),
    (Order, "unsuspend", "manage_services"), (Order, "terminate", "manage_services"), (Order, "extend", "manage_services"),
    (EmailOutbox, "retry_failed", "retry_mail"), (ProvisioningJob, "retry", "manage_services"),
]


@pytest.mark.django_db
@pytest.mark.parametrize(("model", "action", "perm"), ACTIONS, ids=[a[1] for a in ACTIONS])
def test_each_action_is_offered_only_with_its_permission(rf, model, action, perm):
    from django.contrib import admin

    model_admin = admin.site._registry[model]
    view = f"{model._meta.app_label}.view_{model._meta.model_name}"
    request = rf.get("/")
    request.user = staff(view)
    assert action not in model_admin.get_actions(request)
    request.user = staff(view, f"portal.{perm}")
    assert action in model_admin.get_actions(request)


@pytest.mark.django_db
def test_card_refund_and_bank_receipts_need_their_permissions(rf):
    from django.contrib import admin

    from billing.gateways.models import BankTransferReceipt, PaymentAttempt

    request = rf.get("/")
    request.user = staff("billing_gateways.view_paymentattempt", "billing_gateways.add_banktransferreceipt")
    assert "refund_in_full" not in admin.site._registry[PaymentAttempt].get_actions(request)
    assert not admin.site._registry[BankTransferReceipt].has_add_permission(request)
    request.user = staff("billing_gateways.view_paymentattempt", "billing_gateways.add_banktransferreceipt",
                         "portal.refund_payment", "portal.record_bank_transfer")
    assert "refund_in_full" in admin.site._registry[PaymentAttempt].get_actions(request)
    assert admin.site._registry[BankTransferReceipt].has_add_permission(request)
