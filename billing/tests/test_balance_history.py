"""Balance history: keyset pages on the ledger's own order, balance_after as stored, constant queries."""
import re
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from accounts.tests.factories import UserFactory
from billing.models import LedgerAccount, LedgerEntry, LedgerTransaction
from billing.services import ledger

PAGE = 20  # billing.views.PAGE_SIZE


def _move(customer, amount: str, n: int, currency: str = "EUR") -> None:
    """One staff adjustment of `amount` (a credit, or a debit when negative) on the customer's balance."""
    account = ledger.customer_account(customer=customer, currency=currency)
    other = ledger.provider_account(kind=LedgerAccount.Kind.ADJUSTMENT, currency=currency)
    ledger.ledger_post(idempotency_key=f"test-move:{customer.pk}:{currency}:{n}", kind=LedgerTransaction.Kind.ADJUSTMENT,
                         legs=[(account, Decimal(amount)), (other, -Decimal(amount))], memo=f"move {n}")


def _history(customer, count: int, start: int = 0) -> None:
    """`count` movements: three credits of 5.00 then a debit of 2.00, repeating (never below zero)."""
    for n in range(start, start + count):
        _move(customer, "-2.00" if n % 4 == 3 else "5.00", n)


def _ids(response) -> list[int]:
    return [int(pk) for pk in re.findall(r'data-entry="(\d+)"', response.content.decode())]


def _entries(customer, **filters) -> list[int]:
    return list(LedgerEntry.objects.filter(account__customer=customer, account__kind="customer", **filters)
                .order_by("-pk").values_list("pk", flat=True))


def _link(response, testid: str) -> str | None:
    found = re.search(rf'href="([^"]*)" (?:rel="\w+" )?data-testid="{testid}"', response.content.decode())
    return found.group(1).replace("&amp;", "&") if found else None


@pytest.mark.django_db
def test_pages_walk_the_history_newest_first_and_back(currencies, client_in, customer):
    _history(customer, 2 * PAGE + 5)
    everything = _entries(customer)
    url = reverse("billing:balance")

    first = client_in.get(url)
    assert _ids(first) == everything[:PAGE]
    assert _link(first, "page-newer") is None and _link(first, "page-newest") is None
    second = client_in.get(url + _link(first, "page-older"))
    assert _ids(second) == everything[PAGE:2 * PAGE]
    third = client_in.get(url + _link(second, "page-older"))
    assert _ids(third) == everything[2 * PAGE:]
    assert _link(third, "page-older") is None and _link(third, "page-oldest") is None
    back = client_in.get(url + _link(third, "page-newer"))
    assert _ids(back) == everything[PAGE:2 * PAGE]
    assert _ids(client_in.get(url + _link(back, "page-newer"))) == everything[:PAGE]
    assert _ids(client_in.get(url + _link(back, "page-newest"))) == everything[:PAGE]
    oldest = client_in.get(url + _link(first, "page-oldest"))
    assert _ids(oldest) == everything[-PAGE:]
    assert _link(oldest, "page-older") is None and _link(oldest, "page-newer")


@pytest.mark.django_db
def test_exactly_one_page_has_no_pager(currencies, client_in, customer):
    _history(customer, PAGE)
    page = client_in.get(reverse("billing:balance"))
    assert len(_ids(page)) == PAGE and b'data-testid="keyset-pager"' not in page.content


@pytest.mark.django_db
def test_balance_after_is_the_stored_running_balance(currencies, client_in, customer):
    _history(customer, 8)  # +5 +5 +5 -2 +5 +5 +5 -2 -> 26.00
    page = client_in.get(reverse("billing:balance")).content.decode()
    stored = [e.balance_after for e in LedgerEntry.objects.filter(account__customer=customer).order_by("-pk")]
    assert stored == [Decimal(x) for x in ("26", "28", "23", "18", "13", "15", "10", "5")]
    cells = re.findall(r'data-testid="balance-after">([^<]+)<', page)
    assert cells == [f"€{value:.2f}" for value in stored]


@pytest.mark.django_db
@pytest.mark.parametrize("direction,filters", [("in", {"amount__gt": 0}), ("out", {"amount__lt": 0})])
def test_direction_filter_pages_keep_the_filter(currencies, client_in, customer, direction, filters):
    _history(customer, 4 * PAGE + 8)  # 66 credits, 22 debits
    wanted = _entries(customer, **filters)
    url = reverse("billing:balance")
    first = client_in.get(url, {"direction": direction})
    assert _ids(first) == wanted[:PAGE]
    older = _link(first, "page-older")
    assert f"direction={direction}" in older
    second = client_in.get(url + older)
    assert _ids(second) == wanted[PAGE:2 * PAGE]
    assert f"direction={direction}" in _link(second, "page-newer")
    assert _ids(client_in.get(url + _link(first, "page-oldest"))) == wanted[-PAGE:]


@pytest.mark.django_db
def test_history_spans_both_account_currencies_in_posting_order(currencies, client_in, customer):
    for n in range(15):
        _move(customer, "5.00", n)
        _move(customer, "7.00", n, currency="USD")
    everything = _entries(customer)
    assert LedgerAccount.objects.filter(customer=customer).count() == 2 and len(everything) == 30
    first = client_in.get(reverse("billing:balance"))
    assert _ids(first) == everything[:PAGE]
    assert _ids(client_in.get(reverse("billing:balance") + _link(first, "page-older"))) == everything[PAGE:]
    ledger.ledger_post(idempotency_key="usd-out", kind="adjustment", legs=[
        (ledger.customer_account(customer=customer, currency="USD"), Decimal("-105.00")),
        (ledger.provider_account(kind="adjustment", currency="USD"), Decimal("105.00"))])  # nothing stranded


@pytest.mark.django_db
def test_another_customers_movements_never_show(currencies, client_in, customer):
    other = UserFactory().customer
    _history(other, 5)
    _history(customer, 3)
    assert _ids(client_in.get(reverse("billing:balance"))) == _entries(customer)
    foreign = _entries(other)[0]
    # A cursor is only a position: another customer's entry id shows this customer's rows around it.
    assert set(_ids(client_in.get(reverse("billing:balance"), {"before": foreign + 1}))) <= set(_entries(customer))


@pytest.mark.django_db
@pytest.mark.parametrize("query", [{"before": "abc"}, {"after": "-5"}, {"before": "9" * 30}, {"page": "7"},
                                   {"direction": "sideways"}, {"oldest": "yes"}])
def test_unreadable_cursor_or_filter_is_the_first_page(currencies, client_in, customer, query):
    _history(customer, PAGE + 3)
    response = client_in.get(reverse("billing:balance"), query)
    assert response.status_code == 200 and _ids(response) == _entries(customer)[:PAGE]


@pytest.mark.django_db
def test_query_count_is_the_same_for_any_length_and_depth(currencies, client_in, customer):
    def count(query=None):
        with CaptureQueriesContext(connection) as ctx:
            response = client_in.get(reverse("billing:balance"), query or {})
        assert response.status_code == 200
        return len(ctx), response

    _history(customer, PAGE + 2)
    first, page = count()
    older, _page = count({"before": _ids(page)[-1]})
    _history(customer, 6 * PAGE, start=PAGE + 2)
    ids = _entries(customer)
    assert count()[0] == first
    assert count({"before": ids[3 * PAGE]})[0] == older
    assert count({"after": ids[4 * PAGE]})[0] == older
    assert count({"oldest": "1"})[0] == older
    assert count({"direction": "out", "before": ids[2 * PAGE]})[0] == older
