"""Exports for accountants (staff, CSV or XLSX) and the customer's own invoice list (CSV).

A period is [start, end) in the provider's time zone, by each row's own date: invoices by issue,
payments by receipt, credit notes by issue, ledger legs by their transaction's posting time. Amounts
are written as plain decimals with their currency in the next column (never a float), so the sums
per currency equal the reports: the revenue legs of the ledger export are what the Reports page's
net revenue shows.
"""
import csv
import io
from datetime import datetime
from decimal import Decimal

from django.db.models import QuerySet
from django.utils import timezone

from accounts.models import Customer

from .models import CreditNote, Invoice, LedgerEntry, Payment
from .money import quantize

KINDS = ("invoices", "payments", "credit_notes", "ledger", "oss")


def _m(amount, currency: str):
    """An amount at its currency's minor unit (stored columns carry extra decimal places)."""
    return "" if amount is None else quantize(amount, currency)


def _percent(value: Decimal) -> str:
    return format(value.normalize(), "f")  # 20.000 -> "20", not "2E+1"


def _when(moment: datetime | None) -> str:
    return timezone.localtime(moment).strftime("%Y-%m-%d %H:%M") if moment else ""


def _invoice_rows(invoices: QuerySet) -> tuple[list[str], list[list]]:
    header = ["number", "issued", "customer_id", "payer", "payer_country", "payer_vat_number", "kind", "status", "currency",
              "subtotal", "tax_percent", "tax_amount", "total", "amount_paid", "reverse_charge", "paid_at"]
    rows = [[i.number, _when(i.issued_at), i.customer_id, i.payer_company or i.payer_name, i.payer_country, i.payer_vat_number,
             i.kind, i.status, i.currency, _m(i.subtotal, i.currency), _percent(i.tax_percent), _m(i.tax_amount, i.currency),
             _m(i.total, i.currency), _m(i.amount_paid, i.currency),
             "yes" if i.reverse_charge else "no", _when(i.paid_at)] for i in invoices.order_by("year", "sequence")]
    return header, rows


def accounting_rows(*, what: str, start: datetime, end: datetime) -> tuple[list[str], list[list]]:
    if what == "invoices":
        return _invoice_rows(Invoice.objects.filter(issued_at__gte=start, issued_at__lt=end))
    if what == "payments":
        header = ["id", "received", "customer_id", "method", "gateway", "external_id", "status", "currency", "amount",
                  "refunded", "credited_amount", "credited_currency", "rate", "invoice"]
        payments = Payment.objects.filter(created_at__gte=start, created_at__lt=end).select_related("invoice").order_by("pk")
        return header, [[p.pk, _when(p.created_at), p.customer_id, p.method, p.gateway, p.external_id, p.status, p.currency,
                         _m(p.amount, p.currency), _m(p.refunded_amount, p.currency),
                         _m(p.credited_amount, p.credited_currency or p.currency),
                         p.credited_currency, p.rate if p.rate is not None else "", p.invoice.number if p.invoice else ""]
                        for p in payments]
    if what == "credit_notes":
        header = ["number", "issued", "customer_id", "invoice", "currency", "net", "tax_amount", "total", "reason", "refunded_to_payment"]
        notes = CreditNote.objects.filter(created_at__gte=start, created_at__lt=end).select_related("invoice").order_by("pk")
        return header, [[n.number, _when(n.created_at), n.customer_id, n.invoice.number, n.currency,
                         _m(n.amount - n.tax_amount, n.currency), _m(n.tax_amount, n.currency), _m(n.amount, n.currency),
                         n.reason, n.payment_id or ""] for n in notes]
    if what == "ledger":
        header = ["transaction", "posted", "kind", "account", "currency", "amount", "balance_after", "invoice", "payment", "memo"]
        legs = (LedgerEntry.objects.filter(transaction__created_at__gte=start, transaction__created_at__lt=end)
                .select_related("transaction", "transaction__invoice", "account").order_by("pk"))
        return header, [[e.transaction_id, _when(e.transaction.created_at), e.transaction.kind, e.account.code, e.currency,
                         _m(e.amount, e.currency), _m(e.balance_after, e.currency), e.transaction.invoice.number if e.transaction.invoice else "",
                         e.transaction.payment_id or "", e.transaction.memo] for e in legs]
    if what == "oss":
        header = ["country", "tax_percent", "currency", "net", "tax"]
        return header, [[r["country"], r["tax_percent"], r["currency"], r["net"], r["tax"]]
                        for r in oss_rows(start=start, end=end)]
    raise ValueError(f"Unknown export {what!r}")


def customer_invoice_rows(customer: Customer) -> tuple[list[str], list[list]]:
    header, rows = _invoice_rows(Invoice.objects.filter(customer=customer))
    keep = [i for i, name in enumerate(header) if name not in ("customer_id",)]
    return [header[i] for i in keep], [[row[i] for i in keep] for row in rows]


def to_csv(header: list[str], rows: list[list]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header)
    for row in rows:
        # A cell starting with = + - @ is written with a leading quote so spreadsheets do not run it.
        writer.writerow([f"'{v}" if isinstance(v, str) and v[:1] in ("=", "+", "-", "@") else v for v in row])
    return out.getvalue().encode("utf-8-sig")  # BOM: Excel opens UTF-8 correctly


def to_xlsx(header: list[str], rows: list[list], *, title: str) -> bytes:
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    sheet.title = title[:31]
    sheet.append(header)
    for row in rows:
        sheet.append([v if not (isinstance(v, str) and v[:1] == "=") else f"'{v}" for v in row])
        for cell, value in zip(sheet[sheet.max_row], row):
            if isinstance(value, Decimal):  # shown with the decimals it was written with
                places = max(0, -value.as_tuple().exponent)
                cell.number_format = "0." + "0" * places if places else "0"
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def oss_rows(*, start: datetime, end: datetime) -> list[dict]:
    """One-Stop-Shop report: B2C supplies to EU countries other than the seller's, per country, VAT
    rate and currency, from the ledger's revenue and tax legs posted in [start, end) (credit notes'
    reversals included, so refunds reduce the quarter they happen in). B2C = an invoice without reverse
    charge and without a payer VAT number. The country is the invoice's payer country."""
    from django.conf import settings
    from django.db.models import Sum

    from .models import LedgerAccount
    from .tax import EU_COUNTRIES

    seller = settings.BILLING_SELLER_COUNTRY
    legs = (LedgerEntry.objects
            .filter(transaction__created_at__gte=start, transaction__created_at__lt=end,
                    account__kind__in=[LedgerAccount.Kind.REVENUE, LedgerAccount.Kind.TAX],
                    transaction__invoice__isnull=False, transaction__invoice__reverse_charge=False,
                    transaction__invoice__payer_vat_number="", transaction__invoice__payer_country__in=EU_COUNTRIES)
            .exclude(transaction__invoice__payer_country=seller)
            .values("transaction__invoice__payer_country", "transaction__invoice__tax_percent", "currency", "account__kind")
            .annotate(total=Sum("amount")))
    table: dict[tuple, dict] = {}
    for leg in legs:
        key = (leg["transaction__invoice__payer_country"], _percent(leg["transaction__invoice__tax_percent"]), leg["currency"])
        row = table.setdefault(key, {"country": key[0], "tax_percent": key[1], "currency": key[2],
                                     "net": quantize(0, key[2]), "tax": quantize(0, key[2])})
        column = "net" if leg["account__kind"] == LedgerAccount.Kind.REVENUE else "tax"
        row[column] = quantize(row[column] + leg["total"], key[2])
    return [table[key] for key in sorted(table)]
