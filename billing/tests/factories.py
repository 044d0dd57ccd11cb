from decimal import Decimal

import factory
from django.utils import timezone

from billing.models import Currency, TaxRate

# Rates per 1 EUR used across the tests (ECB 2025-10-21 for USD/JPY/GBP; a staff-fixed RUB rate).
TEST_RATES = {"EUR": None, "USD": Decimal("1.1607"), "JPY": Decimal("176.45"), "GBP": Decimal("0.86780"), "RUB": Decimal("94.5000")}


class CurrencyFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Currency
        django_get_or_create = ("code",)

    code = "EUR"
    enabled = True
    rate_source = Currency.RateSource.ECB
    rate_updated_at = factory.LazyFunction(timezone.now)


def make_currencies(codes=("EUR", "USD", "RUB", "JPY", "GBP")) -> list[Currency]:
    made = []
    for position, code in enumerate(codes):
        rate = TEST_RATES[code]
        source = (Currency.RateSource.BASE if code == "EUR"
                  else Currency.RateSource.FIXED if code == "RUB" else Currency.RateSource.ECB)
        made.append(CurrencyFactory(code=code, rate=rate, rate_source=source, position=position))
    return made


class TaxRateFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = TaxRate

    country = "DE"
    profile_type = TaxRate.Profile.ANY
    percent = Decimal("19")
    label = "VAT"


class CompanyPayerFactory(factory.django.DjangoModelFactory):
    """A company payer as the customer enters it: awaiting verification until staff verify it."""

    class Meta:
        model = "billing.Payer"

    payer_type = "company"
    name = "Erika Mustermann"
    company_name = factory.Sequence(lambda n: f"Acme {n} GmbH")
    registration_number = factory.Sequence(lambda n: f"HRB {1000 + n}")
    vat_number = factory.Sequence(lambda n: f"DE{100000000 + n}")
    street = "Hauptstr. 1"
    city = "Berlin"
    postcode = "10115"
    country = "DE"
    email = "billing@acme.example"
    verification_status = "pending"
