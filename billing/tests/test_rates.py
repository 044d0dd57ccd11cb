"""ECB feed: parsed from the saved daily file served by a local HTTP server (never the internet)."""
import datetime as dt
import functools
import http.server
import threading
from decimal import Decimal
from pathlib import Path

import pytest

from billing.models import Currency, RateRefreshError, RateSnapshot
from billing.rates import RateTable
from billing.services.rates import rates_refresh_ecb

ECB_FILE = Path(__file__).parent.parent / "data" / "ecb-eurofxref-daily-2025-10-21.xml"


@pytest.fixture
def feed_server(tmp_path):
    """Serve tmp_path over HTTP on loopback; tests write the file they want served."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    handler.log_message = lambda *a, **k: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield tmp_path, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.mark.django_db
def test_ecb_feed_updates_rates_and_keeps_history(currencies, feed_server):
    root, base = feed_server
    (root / "daily.xml").write_bytes(ECB_FILE.read_bytes())
    Currency.objects.filter(code="USD").update(rate=Decimal("1.1000"))
    updated = rates_refresh_ecb(url=f"{base}/daily.xml")
    assert updated == 3  # USD, JPY, GBP are ECB-sourced; RUB is fixed by staff
    usd = Currency.objects.get(code="USD")
    assert usd.rate == Decimal("1.1607") and usd.rate_feed_date == dt.date(2025, 10, 21)
    assert Currency.objects.get(code="GBP").rate == Decimal("0.86780")
    assert Currency.objects.get(code="RUB").rate == Decimal("94.5")
    assert RateSnapshot.objects.filter(currency="JPY", value=Decimal("176.45"), feed_date=dt.date(2025, 10, 21)).exists()
    # Conversions read the one rate store (the feed is from 2025, so only as captured money may).
    assert RateTable(allow_stale=True).quote("EUR", "USD").rate * 10 == Decimal("11.607")


@pytest.mark.django_db
def test_there_is_no_second_rate_store():
    """django-money's exchange app (a Rate table nothing read) is not installed and its tables are gone."""
    from django.apps import apps
    from django.db import connection

    assert not apps.is_installed("djmoney.contrib.exchange")
    assert not {"exchange_rate", "exchange_exchangebackend"} & set(connection.introspection.table_names())


@pytest.mark.django_db
@pytest.mark.parametrize("content", [b"", b"<not xml", b"<?xml version='1.0'?><gesmes:Envelope xmlns:gesmes='http://www.gesmes.org/xml/2002-08-01'/>",
                                     ECB_FILE.read_bytes().replace(b"rate='1.1607'", b"rate='abc'")])
def test_malformed_or_empty_feed_keeps_old_rates_and_records_error(currencies, feed_server, content):
    root, base = feed_server
    (root / "daily.xml").write_bytes(content)
    before = {c.code: (c.rate, c.rate_updated_at) for c in Currency.objects.all()}
    assert rates_refresh_ecb(url=f"{base}/daily.xml") == 0
    assert {c.code: (c.rate, c.rate_updated_at) for c in Currency.objects.all()} == before
    error = RateRefreshError.objects.get()
    assert error.source == "ecb" and error.message


@pytest.mark.django_db
def test_unreachable_feed_records_error(currencies, feed_server):
    _root, base = feed_server
    assert rates_refresh_ecb(url=f"{base}/missing.xml") == 0
    assert "404" in RateRefreshError.objects.get().message
