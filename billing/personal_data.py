"""Billing's part of "export my data" (accounts.personal_data). Invoices and the ledger are kept on erasure:
the invoice carries its issued payer snapshot and the law requires the records."""
from accounts.models import Customer

from .money import quantize as q
from .selectors import account_movements, invoices_for, payments_for


def export_invoices(customer: Customer) -> list[dict]:
    return [{
        "number": invoice.number, "kind": invoice.kind, "status": invoice.status, "currency": invoice.currency,
        "subtotal": q(invoice.subtotal, invoice.currency), "tax_label": invoice.tax_label,
        "tax_percent": invoice.tax_percent, "tax_amount": q(invoice.tax_amount, invoice.currency),
        "total": q(invoice.total, invoice.currency), "amount_paid": q(invoice.amount_paid, invoice.currency),
        "issued_at": invoice.issued_at, "paid_at": invoice.paid_at, "cancelled_at": invoice.cancelled_at,
        "payer_name": invoice.payer_name, "payer_company": invoice.payer_company,
        "payer_address": invoice.payer_address, "payer_country": invoice.payer_country,
        "payer_vat_number": invoice.payer_vat_number, "payer_email": invoice.payer_email,
        "lines": [{"description": line.description, "quantity": line.quantity,
                   "unit_price": q(line.unit_price, invoice.currency), "amount": q(line.amount, invoice.currency)}
                  for line in invoice.lines.all()],
    } for invoice in invoices_for(customer).prefetch_related("lines").order_by("issued_at", "pk")]


def export_ledger(customer: Customer) -> list[dict]:
    return [{
        "date": entry.transaction.created_at, "kind": entry.transaction.kind, "amount": q(entry.amount, entry.currency),
        "currency": entry.currency, "balance_after": q(entry.balance_after, entry.currency), "memo": entry.transaction.memo,
        "invoice": entry.transaction.invoice.number if entry.transaction.invoice_id else "",
        "rate": entry.transaction.rate,
    } for entry in account_movements(customer).order_by("pk")]


def export_payments(customer: Customer) -> list[dict]:
    return [{
        "date": payment.created_at, "method": payment.method, "amount": q(payment.amount, payment.currency),
        "currency": payment.currency, "status": payment.status,
        "invoice": payment.invoice.number if payment.invoice_id else "", "external_id": payment.external_id,
    } for payment in payments_for(customer).order_by("created_at", "pk")]


def register() -> None:
    from accounts.personal_data import register_exporter

    register_exporter("invoices", export_invoices)
    register_exporter("ledger", export_ledger)
    register_exporter("payments", export_payments)
