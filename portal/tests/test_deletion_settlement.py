"""Account deletion settles the money first (issue 15, item 15): staff see the balance, open invoices
and running services; approval is refused until the balance is refunded or written off and the open
invoices are settled, all on the ledger."""
import io
from decimal import Decimal

import pytest
from django.contrib.auth.models import Permission
from django.core.exceptions import ValidationError
from django.core.management import call_command

from accounts.models import Customer, DeletionRequest
from accounts.services.deletion import deletion_request_approve, deletion_request_create
from accounts.tests.factories import StaffUserFactory, UserFactory
from billing.models import Invoice, LedgerAccount, LedgerTransaction
from billing.selectors import balance_of
from billing.services.currency import account_currency_change, account_currency_change_preview
from billing.services.invoices import LineInput, invoice_issue
from billing.services.ledger import customer_account, ledger_post, provider_account
from billing.services.payments import payment_record
from billing.services.settlement import customer_settle_for_deletion
from billing.tests.factories import make_currencies
from notifications.models import Notification
from orders.models import Order
from orders.services.placing import order_place
from orders.tests.factories import PlanFactory, order_options

pytestmark = pytest.mark.django_db


@pytest.fixture
def leaving():
    """A USD customer with a running service, 71.07 on the balance and a part-paid invoice, who asked
    to delete the account."""
    make_currencies()
    owner = UserFactory(customer__currency="USD", customer__low_balance_threshold=Decimal("10.00"))
    customer = owner.customer
    payment_record(idempotency_key="in:1", customer=customer, amount=Decimal("71.07"), currency="USD",
                   method="bank_transfer")
    order = order_place(customer=customer, actor=owner, plan=PlanFactory(prices={(1, "USD"): "10.00"}), period_months=1,
                        options=order_options(None), idempotency_key="svc").order
    invoice = invoice_issue(customer=customer, kind=Invoice.Kind.ADVANCE, currency="USD",
                            lines=[LineInput(description="Top-up", quantity=1, unit_price=Decimal("30.00"))])
    payment_record(idempotency_key="in:2", customer=customer, amount=Decimal("10.00"), currency="USD",
                   method="bank_transfer", invoice=invoice)
    part_paid = invoice_issue(customer=customer, kind=Invoice.Kind.ORDER, currency="USD",
                              lines=[LineInput(description="Extra IP", quantity=1, unit_price=Decimal("20.00"))])
    payment_record(idempotency_key="in:3", customer=customer, amount=Decimal("10.00"), currency="USD",
                   method="bank_transfer", invoice=part_paid)
    assert balance_of(customer) == Decimal("71.07")
    deletion = deletion_request_create(customer=customer, user=owner, reason="bye")
    return customer, order, part_paid, deletion


def test_approval_is_refused_while_money_is_unsettled(leaving):
    customer, order, part_paid, deletion = leaving
    with pytest.raises(ValidationError) as refused:
        deletion_request_approve(deletion_request=deletion, staff=StaffUserFactory())
    assert refused.value.code == "unsettled"
    message = " ".join(refused.value.messages)
    assert "$71.07" in message and part_paid.number in message
    assert Customer.objects.get(pk=customer.pk).anonymized_at is None
    assert DeletionRequest.objects.get(pk=deletion.pk).status == DeletionRequest.Status.PENDING


def test_refund_by_bank_transfer_then_approval(leaving):
    customer, order, part_paid, deletion = leaving
    staff = StaffUserFactory()
    with pytest.raises(ValidationError):  # a refund needs the bank's reference
        customer_settle_for_deletion(customer=customer, deletion_request=deletion, method="refund_bank",
                                     reason="account closed", actor=staff)
    refunds = customer_settle_for_deletion(customer=customer, deletion_request=deletion, method="refund_bank",
                                           reason="account closed", actor=staff, bank_reference="SEPA-123")
    assert Invoice.objects.get(pk=part_paid.pk).status == Invoice.Status.CANCELLED
    assert not Invoice.objects.filter(customer=customer, status__in=Invoice.OPEN_STATUSES).exists()
    # 71.07 (the part-paid top-up credited its 10.00 at once) + the 10.00 paid on the cancelled service
    # invoice = 81.07, sent back as refunds of the payments that brought it, newest first.
    assert [(r.payment.idempotency_key, r.amount, r.external_id) for r in refunds] == [
        ("in:3", Decimal("10.00"), "SEPA-123"), ("in:2", Decimal("10.00"), "SEPA-123"), ("in:1", Decimal("61.07"), "SEPA-123")]
    assert balance_of(customer) == Decimal("0.00")
    assert not Notification.objects.filter(customer=customer, kind="low_balance").exists()  # emptied on purpose
    assert customer_settle_for_deletion(customer=customer, deletion_request=deletion, method="refund_bank",
                                        reason="again", actor=staff, bank_reference="SEPA-124") == []
    deletion_request_approve(deletion_request=deletion, staff=staff)
    assert Customer.objects.get(pk=customer.pk).anonymized_at is not None
    assert Order.objects.get(pk=order.pk).status == Order.Status.TERMINATED
    call_command("audit_ledger", stdout=io.StringIO())


def test_write_off_settles_every_currency_on_the_ledger(leaving):
    customer, order, part_paid, deletion = leaving
    account_currency_change(customer=customer, currency="EUR", expected_rate=account_currency_change_preview(
        customer=customer, currency="EUR").quote.rate)
    customer.refresh_from_db()
    # Money stranded in the old currency's account (what the currency-switch race of issue 15 #6 left behind).
    usd = customer_account(customer=customer, currency="USD")
    ledger_post(idempotency_key="stranded", kind=LedgerTransaction.Kind.ADJUSTMENT, memo="stranded",
                legs=[(usd, Decimal("5.00")), (provider_account(kind="adjustment", currency="USD"), Decimal("-5.00"))])
    customer_settle_for_deletion(customer=customer, deletion_request=deletion, method="write_off",
                                 reason="too small to return", actor=StaffUserFactory())
    assert not LedgerAccount.objects.filter(customer=customer, kind=LedgerAccount.Kind.CUSTOMER).exclude(balance=0).exists()
    assert LedgerAccount.objects.get(code="adjustment:writeoff:USD").balance > 0
    assert LedgerAccount.objects.get(code="adjustment:writeoff:EUR").balance > 0
    deletion_request_approve(deletion_request=deletion, staff=StaffUserFactory())
    call_command("audit_ledger", stdout=io.StringIO())


def test_staff_see_what_is_open_and_settle_from_the_admin(client, leaving):
    customer, order, part_paid, deletion = leaving
    staff = StaffUserFactory(is_superuser=False)
    staff.user_permissions.add(*Permission.objects.filter(
        content_type__app_label__in=["accounts"], codename__in=["view_deletionrequest", "change_deletionrequest"]))
    client.force_login(staff)
    page = client.get(f"/admin/accounts/deletionrequest/{deletion.pk}/change/").content.decode()
    assert "$71.07" in page and part_paid.number in page and f"#{order.pk}" in page
    url = "/admin/accounts/deletionrequest/"
    assert "settle_money" not in client.get(url).content.decode()  # needs the adjust_balance permission
    staff.user_permissions.add(*Permission.objects.filter(content_type__app_label="portal",
                                                          codename__in=["adjust_balance", "review_deletion"]))
    client.force_login(staff)
    confirm = client.post(url, {"action": "approve", "_selected_action": [deletion.pk]}).content.decode()
    assert "Not settled yet" in confirm and "$71.07" in confirm
    form = client.post(url, {"action": "settle_money", "_selected_action": [deletion.pk]})
    assert form.status_code == 200 and "Refund by bank transfer" in form.content.decode()
    refused = client.post(url, {"action": "settle_money", "_selected_action": [deletion.pk], "apply": "1",
                                "method": "refund_bank", "reason": "customer left"}).content.decode()
    assert "Enter the bank" in refused and balance_of(customer) == Decimal("71.07")  # a refund needs its reference
    client.post(url, {"action": "settle_money", "_selected_action": [deletion.pk], "apply": "1",
                      "method": "write_off", "reason": "customer left"})
    assert balance_of(customer) == Decimal("0.00")
    client.post(url, {"action": "approve", "_selected_action": [deletion.pk], "apply": "1"})
    assert DeletionRequest.objects.get(pk=deletion.pk).status == DeletionRequest.Status.COMPLETED
