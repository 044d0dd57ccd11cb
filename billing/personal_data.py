"""Billing's part of "export my data" and of account erasure (accounts.personal_data).

On erasure the payers' own details are blanked. Invoices, acts, contract acceptances and the ledger are
kept as they are: they carry the details printed on them when issued or accepted, and the law requires
the records."""
from accounts.models import Customer, User

from .money import quantize as q
from .selectors import (
    account_movements, acts_for, contract_acceptances_for, invoices_for, payers_for, payments_for,
)
from .selectors import payer_details
from .services.payers import payers_anonymize


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


def export_payers(customer: Customer) -> list[dict]:
    rows = []
    for payer in payers_for(customer, include_archived=True).order_by("pk"):
        details = payer_details(payer)
        rows.append({
            "from_profile": payer.is_profile, "type": details.payer_type, "name": details.name, "company": details.company,
            "registration_number": details.registration_number, "vat_number": details.vat_number,
            "address": details.address, "country": details.country, "email": details.email,
            "verification_status": details.verification_status, "verification_note": details.verification_note,
            "created_at": payer.created_at, "archived_at": payer.archived_at,
        })
    return rows


def export_acts(customer: Customer) -> list[dict]:
    return [{
        "number": act.number, "month": act.period.strftime("%Y-%m"), "currency": act.currency,
        "subtotal": q(act.subtotal, act.currency), "tax_amount": q(act.tax_amount, act.currency), "total": q(act.total, act.currency),
        "payer_name": act.payer_name, "payer_company": act.payer_company, "payer_address": act.payer_address,
        "payer_country": act.payer_country, "payer_vat_number": act.payer_vat_number,
        "payer_registration_number": act.payer_registration_number, "issued_at": act.created_at,
        "lines": [{"invoice": line.invoice.number, "description": line.description, "date": line.date,
                   "total": q(line.total, act.currency)} for line in act.lines.all()],
    } for act in acts_for(customer).prefetch_related("lines__invoice").order_by("period", "pk")]


def export_contract_acceptances(customer: Customer) -> list[dict]:
    return [{
        "contract": acceptance.version.title, "version": acceptance.version.version, "accepted_at": acceptance.accepted_at,
        "accepted_by": acceptance.user.username if acceptance.user else "", "ip": acceptance.ip,
        "payer": acceptance.payer_label, "payer_details": acceptance.payer_details,
    } for acceptance in contract_acceptances_for(customer).order_by("accepted_at", "pk")]


def anonymize_payers(customer: Customer, actor: User | None) -> None:
    payers_anonymize(customer=customer)


def deletion_open_items(customer: Customer) -> list:
    """What blocks approving the account's deletion: every non-zero balance (in any currency) and every
    open invoice. `services.settlement.customer_settle_for_deletion` settles them on the ledger."""
    from django.utils.translation import gettext as _

    from accounts.personal_data import OpenItem

    from .models import Invoice, LedgerAccount
    from .money import format_money

    items = [OpenItem(label=_("Balance"), value=format_money(account.balance, account.currency), blocks=True)
             for account in LedgerAccount.objects.filter(customer=customer, kind=LedgerAccount.Kind.CUSTOMER)
             .exclude(balance=0).order_by("currency")]
    items += [OpenItem(label=_("Open invoice %(number)s") % {"number": invoice.number},
                       value=_("%(paid)s of %(total)s paid") % {"paid": format_money(invoice.amount_paid, invoice.currency),
                                                                "total": format_money(invoice.total, invoice.currency)},
                       blocks=True)
              for invoice in invoices_for(customer).filter(status__in=Invoice.OPEN_STATUSES).order_by("pk")]
    return items


def register() -> None:
    from accounts.personal_data import register_deletion_check, register_erasure_handler, register_exporter

    register_deletion_check(deletion_open_items)

    register_exporter("invoices", export_invoices)
    register_exporter("ledger", export_ledger)
    register_exporter("payments", export_payments)
    register_exporter("payers", export_payers)
    register_exporter("acts", export_acts)
    register_exporter("contract_acceptances", export_contract_acceptances)
    register_erasure_handler(anonymize_payers)
