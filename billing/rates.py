"""Exchange rates: `Currency.rate` (units per 1 base currency, EUR) is the one rate store every
conversion reads, with its source, the feed's date and staleness; RateSnapshot keeps the history.

- `EcbFeed` fetches and parses the ECB daily reference XML from settings.BILLING_ECB_URL;
- staff set fixed rates (RUB is not in the ECB feed) with `currency_set_fixed_rate`.
Every refresh appends RateSnapshot rows and a failed refresh appends a RateRefreshError and leaves the
current rates untouched.

A feed rate is stale when the feed's own date (its publication, not our fetch) is more than
BILLING_RATE_MAX_AGE_HOURS ago; stale rates block conversions the customer asks for until the job
refreshes them or staff set a fixed rate. Money already captured is still converted at the last known
rate (`RateTable(allow_stale=True)`), and the quote says it was stale. Staff-fixed rates stay valid
until staff change them.
"""
import datetime as dt
import zoneinfo
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from urllib.error import URLError

from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils import timezone
from django.utils.translation import gettext as _

from .models import Currency

ECB_NS = {"ecb": "http://www.ecb.int/vocabulary/2002-08-01/eurofxref"}
RATE_PLACES = Decimal("1e-12")
# The ECB publishes the day's reference rates at about 16:00 Frankfurt time.
ECB_PUBLICATION_TIME = dt.time(16, 0)
ECB_TIME_ZONE = zoneinfo.ZoneInfo("Europe/Berlin")


class RateError(ValidationError):
    """A conversion cannot be made: rate missing or stale."""


class FeedError(Exception):
    """The feed could not be fetched or parsed; nothing was changed."""


def base_currency() -> str:
    return settings.BILLING_BASE_CURRENCY


def parse_ecb_xml(content: bytes) -> tuple[dt.date, dict[str, Decimal]]:
    """Parse the ECB eurofxref-daily XML: <Cube><Cube time=…><Cube currency=… rate=…/>…"""
    if not content or not content.strip():
        raise FeedError(_("The feed is empty."))
    try:
        root = ET.fromstring(content)
    except ET.ParseError as exc:
        raise FeedError(_("The feed is not valid XML: %(error)s") % {"error": exc}) from exc
    day = root.find("ecb:Cube/ecb:Cube[@time]", ECB_NS)
    if day is None:
        raise FeedError(_("The feed has no dated rates."))
    try:
        feed_date = dt.date.fromisoformat(day.get("time"))
    except (TypeError, ValueError) as exc:
        raise FeedError(_("The feed date is invalid.")) from exc
    rates: dict[str, Decimal] = {}
    for cube in day.findall("ecb:Cube[@currency]", ECB_NS):
        code, raw = cube.get("currency", ""), cube.get("rate", "")
        try:
            value = Decimal(raw)
        except InvalidOperation as exc:
            raise FeedError(_("Rate %(rate)r for %(code)s is not a number.") % {"rate": raw, "code": code}) from exc
        if len(code) != 3 or not code.isalpha() or not value.is_finite() or value <= 0:
            raise FeedError(_("Invalid rate %(rate)r for %(code)r.") % {"rate": raw, "code": code})
        rates[code.upper()] = value
    if not rates:
        raise FeedError(_("The feed has no rates."))
    return feed_date, rates


class EcbFeed:
    """The ECB daily reference rates: `get_rates()` fetches and parses them and sets `feed_date`."""

    def __init__(self, url: str | None = None):
        self.url = url or settings.BILLING_ECB_URL
        self.feed_date: dt.date | None = None

    def get_response(self) -> bytes:
        from urllib.request import Request, urlopen

        request = Request(self.url, headers={"User-Agent": f"{settings.PORTAL_NAME} rates"})
        try:
            with urlopen(request, timeout=settings.BILLING_ECB_TIMEOUT) as response:  # noqa: S310 - configured URL
                return response.read(5_000_000)
        except (URLError, OSError, ValueError) as exc:
            raise FeedError(_("Could not fetch the feed: %(error)s") % {"error": exc}) from exc

    def get_rates(self) -> dict[str, Decimal]:
        self.feed_date, rates = parse_ecb_xml(self.get_response())
        return rates


@dataclass(frozen=True)
class Quote:
    """A cross rate: 1 `source` = `rate` `target`, valid as of `as_of`."""

    source: str
    target: str
    rate: Decimal
    as_of: dt.datetime | None
    stale: bool = False  # made at the last known rate although it is out of date (captured money only)


def rate_published_at(currency: Currency) -> dt.datetime | None:
    """When the rate was published: the feed's own date for feed rates (a feed re-fetched today may
    still carry last year's date), else when it was set."""
    if currency.rate_feed_date is not None:
        published = dt.datetime.combine(currency.rate_feed_date, ECB_PUBLICATION_TIME, tzinfo=ECB_TIME_ZONE)
        return min(published, currency.rate_updated_at) if currency.rate_updated_at else published
    return currency.rate_updated_at


def is_stale(currency: Currency, now: dt.datetime | None = None) -> bool:
    if currency.rate_source in (Currency.RateSource.BASE, Currency.RateSource.FIXED) or currency.code == base_currency():
        return currency.rate is None and currency.code != base_currency()
    published = rate_published_at(currency)
    if currency.rate is None or published is None:
        return True
    age = (now or timezone.now()) - published
    return age > dt.timedelta(hours=settings.BILLING_RATE_MAX_AGE_HOURS)


def rate_per_base(currency: Currency) -> Decimal:
    return Decimal(1) if currency.code == base_currency() else currency.rate


class RateTable:
    """Current rates of all known currencies, loaded in one query; builds quotes between them."""

    def __init__(self, currencies=None, *, allow_stale: bool = False):
        """`allow_stale`: for money already taken, which must be recorded whatever the rate's age."""
        if currencies is None:
            currencies = Currency.objects.all()
        self.by_code = {c.code: c for c in currencies}
        self.now = timezone.now()
        self.allow_stale = allow_stale

    def stale(self, code: str) -> bool:
        currency = self.by_code.get(code)
        return currency is None or is_stale(currency, self.now)

    def quote(self, source: str, target: str) -> Quote:
        if source == target:
            return Quote(source, target, Decimal(1), None)
        stale = False
        for code in (source, target):
            currency = self.by_code.get(code)
            if currency is None or (currency.rate is None and code != base_currency()):
                raise RateError(_("There is no exchange rate for %(code)s.") % {"code": code})
            if is_stale(currency, self.now):
                if not self.allow_stale:
                    raise RateError(_("The exchange rate for %(code)s is out of date; conversions resume after the next refresh.") % {"code": code})
                stale = True
        src, dst = self.by_code[source], self.by_code[target]
        rate = (rate_per_base(dst) / rate_per_base(src)).quantize(RATE_PLACES, rounding=ROUND_HALF_UP)
        times = [rate_published_at(c) for c in (src, dst) if c.code != base_currency()]
        times = [t for t in times if t is not None]
        return Quote(source, target, rate, min(times) if times else None, stale)


def quote(source: str, target: str) -> Quote:
    return RateTable(Currency.objects.filter(code__in={source, target})).quote(source, target)
