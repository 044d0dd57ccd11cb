"""Demo billing data: currencies with rates (no network: the saved ECB file plus a staff RUB rate),
tax rates, a paid top-up so the demo balance is not zero, a paid service invoice and an open one."""
from decimal import Decimal
from pathlib import Path

from . import services
from .models import Currency, Invoice, TaxRate
from .rates import parse_ecb_xml

ECB_SAMPLE = Path(__file__).parent / "data" / "ecb-eurofxref-daily-2025-10-21.xml"


def seed(*, customer, owner, stdout) -> None:
    for position, (code, source) in enumerate([("EUR", "base"), ("USD", "ecb"), ("GBP", "ecb"), ("JPY", "ecb"), ("RUB", "fixed")]):
        Currency.objects.get_or_create(code=code, defaults={"rate_source": source, "position": position, "enabled": True})
    feed_date, rates = parse_ecb_xml(ECB_SAMPLE.read_bytes())
    services.rates_apply_ecb(rates=rates, feed_date=feed_date)
    services.currency_set_fixed_rate(code="RUB", rate=Decimal("94.50"))
    for country, percent in [("NL", "21"), ("DE", "19"), ("FR", "20")]:
        TaxRate.objects.get_or_create(country=country, profile_type=TaxRate.Profile.ANY, defaults={"percent": Decimal(percent), "label": "VAT"})
        TaxRate.objects.get_or_create(country=country, profile_type=TaxRate.Profile.COMPANY,
                                      defaults={"percent": Decimal("0"), "label": "VAT", "reverse_charge": True})

    topup = services.topup_invoice_create(customer=customer, amount=Decimal("250.00"), currency="EUR")
    services.payment_record(idempotency_key="demo:topup:1", customer=customer, amount=topup.total, currency="EUR",
                            method="bank_transfer", invoice=topup, memo="Demo bank transfer")
    backup = services.invoice_issue(customer=customer, kind=Invoice.Kind.ORDER, reference="demo:backup",
                                    lines=[services.LineInput(description="Backup storage 100 GB — 1 month", quantity=1, unit_price=Decimal("4.00"))])
    services.invoice_pay_from_balance(invoice=backup, actor=owner)
    services.topup_invoice_create(customer=customer, amount=Decimal("100.00"), currency="USD")
    stdout.write("  billing: currencies and rates, tax rates, a paid top-up, two invoices")
