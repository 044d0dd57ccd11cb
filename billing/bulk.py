"""Set-based billing for batch jobs (auto-renewal): issue and pay many invoices in a few statements.

`invoices_issue_and_pay()` is `invoice_issue()` + `invoice_pay_from_balance()` for a whole chunk,
writing the same rows (numbered invoice with tax and payer snapshot, its lines, one balanced ledger
transaction per paid invoice with running `balance_after`, cached balances, `invoice_issued`
notices, stored after commit: `notifications.deferred`) with a constant number of statements, in billing's
locking order:

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
from dataclasses import dataclass, field
from decimal import Decimal

from django.db import models
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts.models import Customer
from accounts.selectors import customer_owners, payment_blockers
from core.links import link_for
from core.sql import copy_rows, insert_rows, update_rows
from core.topbar import topbar_changed
from notifications.bulk import Notice
from notifications.deferred import notices_defer
from notifications.kinds import Kind

from . import hooks
from .funding import Leg, funding_record
from .models import ZERO, Invoice, InvoiceLine, LedgerAccount, LedgerEntry, LedgerTransaction, Payer
from .money import format_money
from .selectors import payer_blockers, profile_payer_snapshot, tax_for_customers
from .services.invoices import service_settlement_legs
from .services.ledger import batch_provider_accounts_lock, low_balance_alert_update
from .services.numbering import document_number, document_numbers_reserve
from .tax import TaxDecision, invoice_totals, line_amount

# --- issuing and paying ------------------------------------------------------------------------

@dataclass
class Charge:
    """One invoice to issue (a line of quantity `quantity`, then `extra_lines`: `LineInput`s such as
    a service's add-ons, none of them discounts) or, with `invoice_id`, an open one to pay."""

    customer: Customer
    currency: str
    description: str = ""
    unit_price: Decimal = ZERO
    quantity: int = 1
    reference: str = ""
    idempotency_key: str | None = None
    invoice_id: int | None = None
    extra_lines: list = field(default_factory=list)

    def line_rows(self) -> list[dict]:
        """The invoice lines (without the invoice id), each amount rounded as `invoice_issue` rounds it."""
        lines = [(self.description, self.quantity, self.unit_price, self.reference)]
        lines += [(line.description, line.quantity, line.unit_price, line.reference) for line in self.extra_lines]
        return [{"position": position, "description": description[:255], "quantity": quantity, "unit_price": unit_price,
                 "amount": line_amount(unit_price, quantity, self.currency), "reference": reference, "is_discount": False}
                for position, (description, quantity, unit_price, reference) in enumerate(lines)]


@dataclass
class ChargeResult:
    invoice_id: int
    number: str
    total: Decimal
    paid: bool


def supports(charge: Charge) -> bool:
    """Whether `invoices_issue_and_pay` takes this charge: paid from the account currency, no FX."""
    return charge.currency == charge.customer.currency and not any(line.discount for line in charge.extra_lines)


def invoices_issue_and_pay(*, kind: str, charges: list[Charge], applied_by_caller=()) -> list[ChargeResult]:
    """Issue the new invoices among `charges`, then pay every charge from its customer's balance
    where the balance covers it, in the given order. Must run inside the caller's transaction.

    Returns one result per charge, in order. Every charge must satisfy `supports()`.
    Four steps: prepare (tax, payer snapshot and payment gate per customer, the new invoices' rows:
    everything that needs no lock, before the counter is taken), lock (counter, invoices, balances in
    billing's order), decide (who pays), write.
    """
    if not charges:
        return []
    _check(kind, charges)
    now = timezone.now()
    customers = {charge.customer.pk: charge.customer for charge in charges}
    taxes, snapshots, blocked = _prepare(customers)
    invoices = _lock_invoices(kind, charges, taxes, snapshots, now)
    accounts = _lock_balances(customers, charges)
    paying = _decide(charges, invoices, blocked, accounts, now)
    _write(kind, charges, invoices, paying, accounts, now, applied_by_caller)
    return [ChargeResult(invoice_id=inv["id"], number=inv["number"], total=inv["total"],
                         paid=inv["status"] == Invoice.Status.PAID) for inv in invoices]


def _check(kind: str, charges: list[Charge]) -> None:
    if kind not in Invoice.Kind.values or kind == Invoice.Kind.ADVANCE:
        raise ValueError(f"invoices_issue_and_pay does not take {kind!r} invoices")
    if not all(supports(charge) for charge in charges):
        raise ValueError("a charge needs a currency conversion; pay it with invoice_pay_from_balance")


def _prepare(customers: dict[int, Customer]) -> tuple[dict[int, TaxDecision], dict[int, dict], set[int]]:
    """Per customer: the tax rule and the payer snapshot, as `invoice_issue` computes them, and the
    customers the payment gate (`invoice_payment_blockers`) closes: their profile (owners prefetched,
    so no query per customer)."""
    customer_owners(customers=customers.values())  # the payer snapshot names the owner
    taxes = tax_for_customers(customers.values())
    blocked = {pk for pk, customer in customers.items() if payment_blockers(customer)}
    return taxes, {pk: profile_payer_snapshot(customer) for pk, customer in customers.items()}, blocked


def _new_invoice_row(charge: Charge, kind: str, tax: TaxDecision, snapshot: dict, now) -> dict:
    """The invoice `invoice_issue` would write for this charge, as a row; `_lock_invoices` adds its number
    once the block is reserved."""
    subtotal = sum((line["amount"] for line in charge.line_rows()), ZERO)
    totals = invoice_totals(subtotal=subtotal, tax=tax, currency=charge.currency)
    return {
        "customer_id": charge.customer.pk, "kind": kind, "status": Invoice.Status.UNPAID, "currency": charge.currency,
        "subtotal": totals.subtotal, "tax_percent": tax.percent, "tax_label": tax.label,
        "reverse_charge": tax.reverse_charge, "tax_amount": totals.tax_amount, "total": totals.total,
        "amount_paid": ZERO, "reference": charge.reference, "idempotency_key": charge.idempotency_key,
        "issued_at": now, **snapshot,
    }


def _lock_invoices(kind: str, charges: list[Charge], taxes: dict, snapshots: dict, now) -> list[dict]:
    """Lock steps 1 and 2: a block of numbers on the document counter for the new invoices (all of
    them, paid or not: the series stays gap-free), then the open invoices from an earlier attempt, in
    pk order. Returns one invoice row per charge (new ones without an id yet)."""
    invoices: list[dict] = [None] * len(charges)
    new = [position for position, charge in enumerate(charges) if charge.invoice_id is None]
    for position in new:  # built before the counter is taken: it stays locked until commit
        customer_id = charges[position].customer.pk
        invoices[position] = _new_invoice_row(charges[position], kind, taxes[customer_id], snapshots[customer_id], now)
    if new:
        year, first = document_numbers_reserve(series="INV", count=len(new))
        for offset, position in enumerate(new):
            invoices[position] |= {"number": document_number(series="INV", year=year, sequence=first + offset),
                                   "year": year, "sequence": first + offset}
    existing = sorted(charge.invoice_id for charge in charges if charge.invoice_id is not None)
    if existing:
        locked = {row["id"]: row for row in Invoice.objects.select_for_update().filter(pk__in=existing).order_by("pk")
                  .values("id", "number", "kind", "status", "subtotal", "tax_amount", "total", "amount_paid", "reference",
                          "payer_id")}
        for position, charge in enumerate(charges):
            if charge.invoice_id is not None:
                invoices[position] = locked[charge.invoice_id]
    return invoices


def _lock_balances(customers: dict[int, Customer], charges: list[Charge]) -> dict[int, LedgerAccount]:
    """Lock step 3: the customers' balance accounts (account currency) in pk order, one statement."""
    accounts: dict[int, LedgerAccount] = {}
    for account in (LedgerAccount.objects.select_for_update()
                    .filter(kind=LedgerAccount.Kind.CUSTOMER, customer_id__in=list(customers),
                            currency__in={charge.currency for charge in charges}).order_by("pk")):
        account.customer = customers[account.customer_id]
        if account.currency == account.customer.currency:
            accounts[account.customer_id] = account
    return accounts


def _payers_gate_closed(invoices: list[dict]) -> set[int]:
    """The payment gate's payer half for the batch: payers chosen on earlier invoices, loaded in one query."""
    payer_ids = {invoice["payer_id"] for invoice in invoices if invoice.get("payer_id")}
    return {payer.pk for payer in Payer.objects.filter(pk__in=payer_ids) if payer_blockers(payer)} if payer_ids else set()


def _decide(charges: list[Charge], invoices: list[dict], blocked: set[int], accounts: dict[int, LedgerAccount],
            now) -> list[int]:
    """Who pays, in the order the charges are given: a customer whose balance runs out (or the payment
    gate closes: `blocked` customers, payers closed on their invoices) keeps an unpaid invoice and never
    holds back the others. Marks the paying invoices paid (with `due`, what the balance gives) and
    returns their positions."""
    blocked_payers = _payers_gate_closed(invoices)
    available = {pk: account.balance + account.credit_limit for pk, account in accounts.items()}
    paying = []
    for position, charge in enumerate(charges):
        invoice = invoices[position]
        if invoice["status"] not in Invoice.OPEN_STATUSES:
            continue
        due = invoice["total"] - invoice["amount_paid"]
        if due and (charge.customer.pk in blocked or invoice.get("payer_id") in blocked_payers):
            continue
        if due and available.get(charge.customer.pk, ZERO) < due:
            continue
        available[charge.customer.pk] = available.get(charge.customer.pk, ZERO) - due
        paying.append(position)
        invoice["status"], invoice["amount_paid"], invoice["paid_at"], invoice["due"] = Invoice.Status.PAID, invoice["total"], now, due
    return paying


def _write(kind: str, charges: list[Charge], invoices: list[dict], paying: list[int], accounts, now,
           applied_by_caller) -> None:
    """New invoices (paid already or not) and their lines, the ledger, earlier invoices now paid,
    the paid-invoice handlers and the `invoice_issued` notices."""
    new = [position for position, charge in enumerate(charges) if charge.invoice_id is None]
    if new:
        _insert_invoices([charges[p] for p in new], [invoices[p] for p in new])
    if paying:
        _post_payments(charges, invoices, [p for p in paying if invoices[p]["due"]], accounts, now)
        reopened = [invoices[p]["id"] for p in paying if charges[p].invoice_id is not None]
        if reopened:
            Invoice.objects.filter(pk__in=reopened).update(status=Invoice.Status.PAID, amount_paid=models.F("total"),
                                                           paid_at=now)
        _run_paid_handlers(kind, [invoices[p]["id"] for p in paying], applied_by_caller)
    if new:
        _notify_issued([charges[p] for p in new], [invoices[p] for p in new])


def _insert_invoices(charges: list[Charge], invoices: list[dict]) -> None:
    """The new invoices and their lines (one statement for all); sets each row's id."""
    for invoice, pk in zip(invoices, insert_rows(Invoice, invoices)):
        invoice["id"] = pk
    insert_rows(InvoiceLine, [{"invoice_id": invoice["id"], **line}
                              for charge, invoice in zip(charges, invoices) for line in charge.line_rows()],
                returning=None)


def _post_payments(charges, invoices, paying, accounts, now) -> None:
    """One CHARGE ledger transaction per paid invoice, with the legs the pay-from-balance path posts;
    cached balances and `balance_after` advance in the same order."""
    if not paying:
        return
    # Provider accounts after the customers' (billing's lock order): this worker's slot of batch
    # sub-accounts, so concurrent workers do not queue on shared provider rows.
    provider = batch_provider_accounts_lock(
        kinds=(LedgerAccount.Kind.HOLDING, LedgerAccount.Kind.REVENUE, LedgerAccount.Kind.TAX),
        currencies={charges[p].currency for p in paying})
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
        legs = [(customer_account, -invoice["due"]), (holding, invoice["due"])] + service_settlement_legs(
            holding=holding, revenue=provider[LedgerAccount.Kind.REVENUE, currency],
            tax=provider[LedgerAccount.Kind.TAX, currency], total=invoice["total"], subtotal=invoice["subtotal"],
            tax_amount=invoice["tax_amount"])
        for account, amount in legs:
            if amount:
                account.balance += amount
                entries.append({"transaction_id": tx_id, "account_id": account.pk, "amount": amount,
                                "currency": currency, "balance_after": account.balance})
                posted.append((account, invoice["kind"]))
    copy_rows(LedgerEntry, entries)  # COPY: the statement-level balance check still sees every leg
    _record_funding(tx_ids, entries, posted)
    for account in changed.values():
        if account.kind == LedgerAccount.Kind.CUSTOMER:
            low_balance_alert_update(account)
    topbar_changed(a.customer_id for a in changed.values() if a.kind == LedgerAccount.Kind.CUSTOMER)
    update_rows(LedgerAccount, [
        {"id": a.pk, "balance": a.balance, "low_balance_alerted": a.low_balance_alerted,
         "low_balance_crossings": a.low_balance_crossings} for a in changed.values()
    ], ["balance", "low_balance_alerted", "low_balance_crossings"])


def _record_funding(tx_ids: list[int], entries: list[dict], posted: list[tuple]) -> None:
    """The charges' expense funding (`billing.funding`): COPY returns no ids, so the chunk's debit legs
    (one per transaction, on the customer's balance account) are read back in one statement."""
    customer_accounts = {account.pk for account, _kind in posted if account.kind == LedgerAccount.Kind.CUSTOMER}
    debit_ids = dict(LedgerEntry.objects.filter(transaction_id__in=tx_ids, account_id__in=customer_accounts)
                     .values_list("transaction_id", "id"))
    funding_record([Leg(entry_id=debit_ids[entry["transaction_id"]], transaction_id=entry["transaction_id"],
                        kind=LedgerTransaction.Kind.CHARGE, payment_id=None, invoice_kind=invoice_kind,
                        account_id=account.pk, account_kind=account.kind, customer_id=account.customer_id,
                        amount=entry["amount"], currency=entry["currency"])
                    for entry, (account, invoice_kind) in zip(entries, posted) if account.kind == LedgerAccount.Kind.CUSTOMER])


def _run_paid_handlers(kind: str, invoice_ids: list[int], applied_by_caller) -> None:
    handlers = [h for h in hooks.invoice_paid_handlers(kind) if h not in set(applied_by_caller)]
    if not handlers:
        return
    for invoice in Invoice.objects.filter(pk__in=invoice_ids).select_related("customer").order_by("pk"):
        for handler in handlers:
            handler(invoice)


def _notify_issued(charges, invoices) -> None:
    """The mandatory `invoice_issued` notice per new invoice, as `invoice_issue()` sends it; stored
    after commit (`notices_defer`: the caller delivers it, or the sweeper)."""
    money: dict[tuple, str] = {}
    notices = []
    for charge, invoice in zip(charges, invoices):
        customer = charge.customer
        key = (invoice["total"], charge.currency, customer.language)
        if key not in money:
            money[key] = format_money(invoice["total"], charge.currency, customer.language)
        notices.append(Notice(
            customer=customer, link=link_for("billing:invoice_detail", invoice["id"]),
            dedupe_key=f"invoice:{invoice['id']}:issued",
            context={"invoice_number": invoice["number"], "amount": money[key], "kind": invoice["kind"],
                     "invoice_id": invoice["id"]},
        ))
    notices_defer(kind=Kind.INVOICE_ISSUED, notices=notices)
