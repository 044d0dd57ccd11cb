"""Demo billing data: currencies with rates (no network: the saved ECB file plus a staff RUB rate),
tax rates, a paid top-up so the demo balance is not zero, a paid service invoice and an open one made
out to a verified company payer, the customer agreement, and last month's acts if it had charges."""
from decimal import Decimal
from pathlib import Path

from .models import ContractVersion, Currency, Invoice, TaxRate
from .rates import parse_ecb_xml
from .services.acts import acts_generate, previous_month
from .services.contracts import contract_version_publish
from .services.invoices import (
    LineInput, invoice_issue, invoice_pay_from_balance, invoice_payer_choose, invoice_topup_create,
)
from .services.payers import payer_create, payer_verify
from .services.payments import payment_record
from .services.rates import currency_fixed_rate_set, rates_apply_ecb

ECB_SAMPLE = Path(__file__).parent / "data" / "ecb-eurofxref-daily-2025-10-21.xml"


def seed(*, customer, owner, stdout) -> None:
    for position, (code, source) in enumerate([("EUR", "base"), ("USD", "ecb"), ("GBP", "ecb"), ("JPY", "ecb"), ("RUB", "fixed")]):
        Currency.objects.get_or_create(code=code, defaults={"rate_source": source, "position": position, "enabled": True})
    feed_date, rates = parse_ecb_xml(ECB_SAMPLE.read_bytes())
    rates_apply_ecb(rates=rates, feed_date=feed_date)
    currency_fixed_rate_set(code="RUB", rate=Decimal("94.50"))
    for country, percent in [("NL", "21"), ("DE", "19"), ("FR", "20")]:
        TaxRate.objects.get_or_create(country=country, profile_type=TaxRate.Profile.ANY, defaults={"percent": Decimal(percent), "label": "VAT"})
        TaxRate.objects.get_or_create(country=country, profile_type=TaxRate.Profile.COMPANY,
                                      defaults={"percent": Decimal("0"), "label": "VAT", "reverse_charge": True})

    topup = invoice_topup_create(customer=customer, amount=Decimal("250.00"), currency="EUR")
    payment_record(idempotency_key="demo:topup:1", customer=customer, amount=topup.total, currency="EUR",
                   method="bank_transfer", invoice=topup, memo="Demo bank transfer")
    backup = invoice_issue(customer=customer, kind=Invoice.Kind.ORDER, reference="demo:backup",
                           lines=[LineInput(description="Backup storage 100 GB — 1 month", quantity=1, unit_price=Decimal("4.00"))])
    invoice_pay_from_balance(invoice=backup, actor=owner)
    open_invoice = invoice_topup_create(customer=customer, amount=Decimal("100.00"), currency="USD")

    company = payer_create(customer=customer, actor=owner, data={
        "payer_type": "company", "name": "Alex Demo", "company_name": "Demo Hosting GmbH", "registration_number": "HRB 123456 B",
        "vat_number": "DE811907980", "street": "Friedrichstr. 68", "city": "Berlin", "postcode": "10117", "country": "DE",
        "email": "accounts@demo-hosting.example"})
    payer_verify(payer=company, staff=None)
    invoice_payer_choose(invoice=open_invoice, payer=company, actor=owner)
    if not ContractVersion.objects.exists():
        version = ContractVersion.objects.create(version=1, title="Customer agreement", text=AGREEMENT)
        contract_version_publish(version=version, staff=None)
    acts = acts_generate(period=previous_month())
    stdout.write(f"  billing: currencies and rates, tax rates, a paid top-up, two invoices, a company payer, "
                 f"the customer agreement, {len(acts)} act(s) for last month")


AGREEMENT = """1. Subject
The provider makes hosting services (virtual and dedicated servers, IP addresses, backups) available to the customer, and the customer pays for them in advance under the prices published in the client area.

2. Ordering and payment
Services are ordered and renewed in the client area. Invoices are paid from the prepaid balance or by the payment methods offered. A service starts when its invoice is paid and runs for the period paid.

3. Documents
Every month the provider issues an act (certificate of services rendered) for the services paid that month, per payer and currency. Acts are available under Balance → Documents. If the customer raises no objection within 10 days, the act is deemed accepted.

4. Customer obligations
The customer keeps their account credentials safe, uses the services lawfully and complies with the acceptable use policy. Abuse reports are forwarded to the customer's abuse address.

5. Liability
The provider's liability is limited to the amount paid for the affected service in the month of the incident.

6. Term
This agreement is accepted online and runs until the customer's account is closed. A new version is published in the client area and applies once the customer accepts it."""
