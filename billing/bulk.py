"""Set-based billing for batch jobs (auto-renewal): issue and pay many invoices in a few statements.

`invoices_issue_and_pay()` is `invoice_issue()` + `invoice_pay_from_balance()` for a whole chunk,
writing the same rows (numbered invoice with tax and payer snapshot, its line, one balanced ledger
transaction per paid invoice with running `balance_after`, cached balances, `invoice_issued`
notices) with a constant number of statements, in billing's locking order:

    document counter -> invoice rows (pk) -> customer balance accounts (pk) -> provider accounts (pk)

- Numbers: one `UPDATE … RETURNING` reserves a block of N numbers on the counter row, which stays
  locked until commit; every number of the block is used in this transaction (unpaid invoices are
  issued too), so the series stays gap-free and a rollback returns the whole block.
- Who pays is decided in Python from the locked balances, in the order the charges are given: a
  customer whose balance runs out keeps an unpaid invoice and never holds back the others.
- Paid-invoice handlers (`hooks.register_invoice_paid_handler`) still run inside the transaction;
  a caller that applies its own handler's effect set-based names it in `applied_by_caller`.

Charges that need a currency conversion are not handled here (the caller uses the one-by-one
path for them); `supports()` says which.
"""
from dataclasses import dataclass
from decimal import Decimal

from django.db import connection, models
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts.models import Customer
from accounts.selectors import payment_blockers
from core.calendar import provider_today
from core.topbar import topbar_changed
from notifications.bulk import Notice, insert_rows, notify_many, prefetch_owners, update_rows  # noqa: F401 (re-exported)

from . import hooks
from .funding import Leg, funding_record
from .models import ZERO, DocumentCounter, Invoice, InvoiceLine, LedgerAccount, LedgerEntry, LedgerTransaction, Payer
from .money import format_money, quantize
from .services.invoices import _payer_snapshot
from .services.ledger import _low_balance_update, provider_account
from .services.payers import payer_blockers
from .services.tax import TaxDecision, tax_for

# --- issuing and paying ------------------------------------------------------------------------

@dataclass
class Charge:
    """One invoice to issue (one line, quantity `quantity`) or, with `invoice_id`, an open one to pay."""

    customer: Customer
    currency: str
    description: str = ""
    unit_price: Decimal = ZERO
    quantity: int = 1
    reference: str = ""
    idempotency_key: str | None = None
    invoice_id: int | None = None


@dataclass
class ChargeResult:
    invoice_id: int
    number: str
    total: Decimal
    paid: bool


def supports(charge: Charge) -> bool:
    """Whether `invoices_issue_and_pay` takes this charge: paid from the account currency, no FX."""
    return charge.currency == charge.customer.currency


def _reserve_numbers(count: int) -> tuple[int, int]:
    """(year, first sequence) of a block of `count` numbers; the counter row stays locked until commit."""
    year = provider_today().year
    table = DocumentCounter._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(f'UPDATE "{table}" SET last_number = last_number + %s WHERE series = %s AND year = %s '
                       "RETURNING last_number", [count, "INV", year])
        row = cursor.fetchone()
        if row is None:
            cursor.execute(f'INSERT INTO "{table}" (series, year, last_number) VALUES (%s, %s, 0) '
                           "ON CONFLICT (series, year) DO NOTHING", ["INV", year])
            cursor.execute(f'UPDATE "{table}" SET last_number = last_number + %s WHERE series = %s AND year = %s '
                           "RETURNING last_number", [count, "INV", year])
            row = cursor.fetchone()
    return year, row[0] - count + 1


def invoices_issue_and_pay(*, kind: str, charges: list[Charge], applied_by_caller=()) -> list[ChargeResult]:
    """Issue the new invoices among `charges`, then pay every charge from its customer's balance
    where the balance covers it, in the given order. Must run inside the caller's transaction.

    Returns one result per charge, in order. Every charge must satisfy `supports()`.
    """
    if not charges:
        return []
    if kind not in Invoice.Kind.values or kind == Invoice.Kind.ADVANCE:
        raise ValueError(f"invoices_issue_and_pay does not take {kind!r} invoices")
    if not all(supports(charge) for charge in charges):
        raise ValueError("a charge needs a currency conversion; pay it with invoice_pay_from_balance")
    now = timezone.now()
    customers = {charge.customer.pk: charge.customer for charge in charges}
    prefetch_owners(customers)  # the payer snapshot names the owner
    rules: dict[tuple, TaxDecision] = {}  # keyed by everything tax_for reads
    taxes, snapshots = {}, {}
    for pk, customer in customers.items():
        key = (customer.country, customer.profile_type, customer.verification_status, customer.company_vat_number)
        if key not in rules:
            rules[key] = tax_for(customer)
        taxes[pk] = rules[key]
        snapshots[pk] = _payer_snapshot(customer)

    # 1. The document counter: a block of numbers for the new invoices (all of them, paid or not).
    new = [position for position, charge in enumerate(charges) if charge.invoice_id is None]
    invoices: list[dict] = [None] * len(charges)
    if new:
        year, first = _reserve_numbers(len(new))
        for offset, position in enumerate(new):
            charge = charges[position]
            amount = quantize(charge.unit_price * charge.quantity, charge.currency)
            tax = taxes[charge.customer.pk]
            tax_amount = quantize(amount * tax.percent / 100, charge.currency)
            sequence = first + offset
            invoices[position] = {
                "number": f"{year}-{sequence:06d}", "year": year, "sequence": sequence, "customer_id": charge.customer.pk,
                "kind": kind, "status": Invoice.Status.UNPAID, "currency": charge.currency, "subtotal": amount,
                "tax_percent": tax.percent, "tax_label": tax.label, "reverse_charge": tax.reverse_charge,
                "tax_amount": tax_amount, "total": amount + tax_amount, "amount_paid": ZERO,
                "reference": charge.reference, "idempotency_key": charge.idempotency_key, "issued_at": now,
                **snapshots[charge.customer.pk],
            }
    # 2. Open invoices from an earlier attempt, locked in pk order.
    existing = sorted(charge.invoice_id for charge in charges if charge.invoice_id is not None)
    if existing:
        locked = {row["id"]: row for row in Invoice.objects.select_for_update().filter(pk__in=existing).order_by("pk")
                  .values("id", "number", "kind", "status", "subtotal", "tax_amount", "total", "amount_paid", "reference",
                          "payer_id")}
        for position, charge in enumerate(charges):
            if charge.invoice_id is not None:
                invoices[position] = locked[charge.invoice_id]

    # The payment gate (as `_pay_locked_from_balance` applies it): owners are prefetched, so the
    # profile check costs no query; payers chosen on earlier invoices are loaded in one.
    blocked = {pk for pk, customer in customers.items() if payment_blockers(customer)}
    payer_ids = {invoice["payer_id"] for invoice in invoices if invoice.get("payer_id")}
    blocked_payers = {payer.pk for payer in Payer.objects.filter(pk__in=payer_ids) if payer_blockers(payer)} if payer_ids else set()

    # 3. The customers' balance accounts in pk order, one statement; who pays is decided in order.
    accounts: dict[int, LedgerAccount] = {}
    for account in (LedgerAccount.objects.select_for_update()
                    .filter(kind=LedgerAccount.Kind.CUSTOMER, customer_id__in=list(customers),
                            currency__in={charge.currency for charge in charges}).order_by("pk")):
        account.customer = customers[account.customer_id]
        if account.currency == account.customer.currency:
            accounts[account.customer_id] = account
    available = {pk: account.balance + account.credit_limit for pk, account in accounts.items()}
    paying = []
    for position, charge in enumerate(charges):
        invoice = invoices[position]
        if invoice["status"] not in Invoice.OPEN_STATUSES:
            continue
        due = invoice["total"] - invoice["amount_paid"]
        if due and (charge.customer.pk in blocked or invoice.get("payer_id") in blocked_payers):
            continue
        if due == 0 or available.get(charge.customer.pk, ZERO) >= due:
            if due:
                available[charge.customer.pk] -= due
            paying.append(position)
            invoice["status"], invoice["amount_paid"], invoice["paid_at"] = Invoice.Status.PAID, invoice["total"], now
            invoice["due"] = due

    # 4. Write: new invoices (already paid or not) and their lines, ledger, existing invoices paid.
    if new:
        ids = insert_rows(Invoice, [invoices[position] for position in new])
        for position, pk in zip(new, ids):
            invoices[position]["id"] = pk
        insert_rows(InvoiceLine, [
            {"invoice_id": invoices[p]["id"], "position": 0, "description": charges[p].description[:255],
             "quantity": charges[p].quantity, "unit_price": charges[p].unit_price, "amount": invoices[p]["subtotal"],
             "reference": charges[p].reference, "is_discount": False} for p in new
        ], returning=None)
    if paying:
        _post_payments(charges, invoices, [p for p in paying if invoices[p]["due"]], accounts, now)
        reopened = [invoices[p]["id"] for p in paying if charges[p].invoice_id is not None]
        if reopened:
            Invoice.objects.filter(pk__in=reopened).update(status=Invoice.Status.PAID, amount_paid=models.F("total"),
                                                           paid_at=now)
        _run_paid_handlers(kind, [invoices[p]["id"] for p in paying], applied_by_caller)
    if new:
        _notify_issued([charges[p] for p in new], [invoices[p] for p in new])
    return [ChargeResult(invoice_id=inv["id"], number=inv["number"], total=inv["total"],
                         paid=inv["status"] == Invoice.Status.PAID) for inv in invoices]


def _post_payments(charges, invoices, paying, accounts, now) -> None:
    """One CHARGE ledger transaction per paid invoice, with the legs `_pay_locked_from_balance` posts;
    cached balances and `balance_after` advance in the same order."""
    if not paying:
        return
    # Provider accounts after the customers' (billing's lock order), in pk order, in one statement
    # (codes as `provider_account` names them; it creates the missing ones the first time).
    wanted = {(kind, currency): f"{kind}:{currency}" for currency in sorted({charges[p].currency for p in paying})
              for kind in (LedgerAccount.Kind.HOLDING, LedgerAccount.Kind.REVENUE, LedgerAccount.Kind.TAX)}

    def lock():
        return {a.code: a for a in LedgerAccount.objects.select_for_update().filter(code__in=wanted.values()).order_by("pk")}

    locked = lock()
    if len(locked) < len(wanted):
        for kind, currency in wanted:
            provider_account(kind=kind, currency=currency)
        locked = lock()
    provider = {key: locked[code] for key, code in wanted.items()}
    tx_ids = insert_rows(LedgerTransaction, [
        {"idempotency_key": f"invoice:{invoices[p]['id']}:settle", "kind": LedgerTransaction.Kind.CHARGE,
         "invoice_id": invoices[p]["id"], "reference": invoices[p]["reference"], "created_at": now,
         "memo": (_("Payment of invoice %(number)s") % {"number": invoices[p]["number"]})[:255]}
        for p in paying
    ])
    entries, posted = [], []
    changed: dict[int, LedgerAccount] = {a.pk: a for a in provider.values()}
    for tx_id, position in zip(tx_ids, paying):
        invoice, currency = invoices[position], charges[position].currency
        customer_account = accounts[charges[position].customer.pk]
        changed[customer_account.pk] = customer_account
        holding = provider[LedgerAccount.Kind.HOLDING, currency]
        legs = [(customer_account, -invoice["due"]), (holding, invoice["due"]), (holding, -invoice["total"]),
                (provider[LedgerAccount.Kind.REVENUE, currency], invoice["subtotal"]),
                (provider[LedgerAccount.Kind.TAX, currency], invoice["tax_amount"])]
        for account, amount in legs:
            if amount:
                account.balance += amount
                entries.append({"transaction_id": tx_id, "account_id": account.pk, "amount": amount,
                                "currency": currency, "balance_after": account.balance})
                posted.append((account, invoice["kind"]))
    entry_ids = insert_rows(LedgerEntry, entries)
    funding_record([Leg(entry_id=entry_id, transaction_id=entry["transaction_id"], kind=LedgerTransaction.Kind.CHARGE,
                        payment_id=None, invoice_kind=invoice_kind, account_id=account.pk, account_kind=account.kind,
                        customer_id=account.customer_id, amount=entry["amount"], currency=entry["currency"])
                    for entry_id, entry, (account, invoice_kind) in zip(entry_ids, entries, posted)])
    for account in changed.values():
        if account.kind == LedgerAccount.Kind.CUSTOMER:
            _low_balance_update(account)
    topbar_changed(a.customer_id for a in changed.values() if a.kind == LedgerAccount.Kind.CUSTOMER)
    update_rows(LedgerAccount, [
        {"id": a.pk, "balance": a.balance, "low_balance_alerted": a.low_balance_alerted,
         "low_balance_crossings": a.low_balance_crossings} for a in changed.values()
    ], ["balance", "low_balance_alerted", "low_balance_crossings"])


def _run_paid_handlers(kind: str, invoice_ids: list[int], applied_by_caller) -> None:
    handlers = [h for h in hooks.invoice_paid_handlers(kind) if h not in set(applied_by_caller)]
    if not handlers:
        return
    for invoice in Invoice.objects.filter(pk__in=invoice_ids).select_related("customer").order_by("pk"):
        for handler in handlers:
            handler(invoice)


def _notify_issued(charges, invoices) -> None:
    """The mandatory `invoice_issued` notice per new invoice, as `invoice_issue()` sends it."""
    money: dict[tuple, str] = {}
    notices = []
    for charge, invoice in zip(charges, invoices):
        customer = charge.customer
        key = (invoice["total"], charge.currency, customer.language)
        if key not in money:
            money[key] = format_money(invoice["total"], charge.currency, customer.language)
        notices.append(Notice(
            customer=customer, link=reverse("billing:invoice_detail", args=[invoice["id"]]),
            dedupe_key=f"invoice:{invoice['id']}:issued",
            context={"invoice_number": invoice["number"], "amount": money[key], "kind": invoice["kind"],
                     "invoice_id": invoice["id"]},
        ))
    notify_many(kind="invoice_issued", notices=notices)
