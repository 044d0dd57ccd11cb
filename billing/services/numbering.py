"""Gap-free document numbers (invoices, credit notes, acts): one counter row per series and provider year."""

from django.db import connection

from core.calendar import provider_today

from ..models import DocumentCounter


def document_numbers_reserve(*, series: str, count: int = 1) -> tuple[int, int]:
    """(year, first sequence) of a block of `count` numbers, from a counter row that stays locked until
    commit: gap-free, unlike a sequence (a rollback returns the whole block). One `UPDATE … RETURNING`
    (plus an insert the first time in a year). The year is the provider's (TIME_ZONE), not the
    requester's: one series per provider year. A single document reserves a block of one."""
    year = provider_today().year
    table = DocumentCounter._meta.db_table
    update = (f'UPDATE "{table}" SET last_number = last_number + %s WHERE series = %s AND year = %s '
              "RETURNING last_number")
    with connection.cursor() as cursor:
        cursor.execute(update, [count, series, year])
        row = cursor.fetchone()
        if row is None:
            cursor.execute(f'INSERT INTO "{table}" (series, year, last_number) VALUES (%s, %s, 0) '
                           "ON CONFLICT (series, year) DO NOTHING", [series, year])
            cursor.execute(update, [count, series, year])
            row = cursor.fetchone()
    return year, row[0] - count + 1


SERIES_PREFIXES = {"INV": "", "CN": "CN-", "ACT": "ACT-"}


def document_number(*, series: str, year: int, sequence: int) -> str:
    """A document's printed number: `YYYY-NNNNNN` for invoices, `CN-YYYY-NNNNNN`, `ACT-YYYY-NNNNNN`."""
    return f"{SERIES_PREFIXES[series]}{year}-{sequence:06d}"
