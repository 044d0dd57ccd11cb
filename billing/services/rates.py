"""Exchange rates: the ECB feed and staff's fixed rates, each change with a snapshot. `Currency.rate` is the one
rate store every conversion reads (billing.rates.RateTable)."""

import logging
from decimal import Decimal

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts.services.activity import activity_record

from ..models import Currency, RateRefreshError, RateSnapshot
from ..rates import EcbFeed, FeedError, base_currency
from .errors import BillingError

logger = logging.getLogger(__name__)


def rates_refresh_ecb(*, url: str | None = None) -> int:
    """Fetch the ECB feed and update ECB-sourced currencies. Returns how many rates were updated.
    A fetch/parse failure records a RateRefreshError and leaves every rate as it was."""
    feed = EcbFeed(url=url)
    try:
        rates = feed.get_rates()
    except FeedError as exc:
        RateRefreshError.objects.create(source=Currency.RateSource.ECB, url=feed.url, message=str(exc))
        logger.warning("ECB rate refresh failed: %s", exc)
        return 0
    return rates_apply_ecb(rates=rates, feed_date=feed.feed_date)


@transaction.atomic
def rates_apply_ecb(*, rates: dict[str, Decimal], feed_date) -> int:
    """Make parsed ECB rates current for ECB-sourced currencies, with a snapshot each."""
    now = timezone.now()
    updated = 0
    for currency in Currency.objects.select_for_update().filter(rate_source=Currency.RateSource.ECB, code__in=rates):
        value = rates[currency.code]
        RateSnapshot.objects.create(currency=currency.code, base_currency=base_currency(), value=value,
                                    source=Currency.RateSource.ECB, feed_date=feed_date)
        currency.rate, currency.rate_updated_at, currency.rate_feed_date = value, now, feed_date
        currency.save(update_fields=["rate", "rate_updated_at", "rate_feed_date"])
        updated += 1
    return updated


@transaction.atomic
def currency_fixed_rate_set(*, code: str, rate: Decimal, actor=None) -> Currency:
    """Staff override: a fixed rate (units per 1 base currency) that does not go stale."""
    if not isinstance(rate, Decimal) or not rate.is_finite() or rate <= 0:
        raise BillingError(_("The rate must be a positive number."))
    currency = Currency.objects.select_for_update().get(code=code)
    currency.rate_source = Currency.RateSource.FIXED
    currency.rate, currency.rate_updated_at, currency.rate_feed_date = rate, timezone.now(), None
    currency.save(update_fields=["rate_source", "rate", "rate_updated_at", "rate_feed_date"])
    RateSnapshot.objects.create(currency=code, base_currency=base_currency(), value=rate,
                                source=Currency.RateSource.FIXED, created_by=actor)
    if actor is not None:
        activity_record(action="billing.fixed_rate_set", actor=actor, visible_to_customer=False,
                        details={"currency": code, "rate": str(rate)})
    return currency
