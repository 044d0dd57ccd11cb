"""Keyset ("seek") pagination for long histories, newest first.

A page is found by the key of the row next to it, never by an offset: `?before=<key>` is the page of
rows just older than that key, `?after=<key>` the page just newer, `?oldest=1` the last page, no
parameter the first. Each page costs the same two queries however deep it is (the page itself, one
row more than it shows to know whether another page follows, and an index probe for the other
direction), and no COUNT over the history: the pager offers Newest / Newer / Older / Oldest instead
of "page n of m".

The caller gives two functions: `keys(...)` finds the keys of a page (it may merge one index scan
per account, see billing.selectors.balance_history) and `load(keys)` fetches those rows with what the
page shows.
"""
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from urllib.parse import urlencode

PARAMS = ("before", "after", "oldest", "page")


@dataclass(frozen=True)
class Cursor:
    """What the request asked for: at most one of before/after, or oldest."""

    before: int | None = None
    after: int | None = None
    oldest: bool = False

    @classmethod
    def from_query(cls, query) -> "Cursor":
        """From request.GET; an unreadable key means the first page (nothing to refuse: it is navigation)."""
        for name in ("before", "after"):
            raw = (query.get(name) or "").strip()
            if raw.isdigit() and len(raw) < 19:
                return cls(**{name: int(raw)})
        return cls(oldest=query.get("oldest") == "1")

    @property
    def first(self) -> bool:
        return self.before is None and self.after is None and not self.oldest


@dataclass
class KeysetPage(Sequence):
    items: list
    has_newer: bool
    has_older: bool
    key: Callable = field(repr=False, default=lambda row: row.pk)
    query: dict = field(default_factory=dict)  # the request's other parameters (filters), kept in the links

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index):
        return self.items[index]

    @property
    def has_other_pages(self) -> bool:
        return self.has_newer or self.has_older

    def _url(self, **cursor) -> str:
        params = {**self.query, **cursor}
        return "?" + urlencode(params) if params else "?"

    @property
    def newest_url(self) -> str:
        return self._url()

    @property
    def newer_url(self) -> str:
        return self._url(after=self.key(self.items[0])) if self.items else self._url()

    @property
    def older_url(self) -> str:
        return self._url(before=self.key(self.items[-1])) if self.items else self._url()

    @property
    def oldest_url(self) -> str:
        return self._url(oldest=1)


def keyset_page(keys: Callable[..., list], load: Callable[[list], list], *, cursor: Cursor, size: int,
                key: Callable, query: dict | None = None) -> KeysetPage:
    """One page of `size` rows, newest first. `keys(before=, after=, ascending=, limit=)` returns the
    keys of rows with key < before and/or key > after, descending by the key (ascending=True:
    ascending); `load(keys)` returns those rows in the order given."""
    query = {k: v for k, v in (query or {}).items() if k not in PARAMS}
    if cursor.after is not None:
        found = keys(before=None, after=cursor.after, ascending=True, limit=size + 1)
        has_newer = len(found) > size
        page = list(reversed(found[:size]))
        has_older = bool(keys(before=page[-1] if page else cursor.after + 1, after=None, ascending=False, limit=1))
    elif cursor.oldest:
        page = list(reversed(keys(before=None, after=None, ascending=True, limit=size)))
        has_older = False
        has_newer = bool(page) and bool(keys(before=None, after=page[0], ascending=True, limit=1))
    else:
        found = keys(before=cursor.before, after=None, ascending=False, limit=size + 1)
        has_older = len(found) > size
        page = found[:size]
        has_newer = cursor.before is not None and bool(
            keys(before=None, after=page[0] if page else cursor.before - 1, ascending=True, limit=1))
    return KeysetPage(items=load(page) if page else [], has_newer=has_newer, has_older=has_older, key=key, query=query)
