"""core.sql: one statement for many rows, with the model's defaults for omitted fields."""
import pytest
from django.contrib.auth.models import Group
from django.db import connection
from django.test.utils import CaptureQueriesContext

from core.sql import insert_rows, update_rows


@pytest.mark.django_db
def test_insert_rows_is_one_statement_and_returns_ids_in_order():
    with CaptureQueriesContext(connection) as queries:
        ids = insert_rows(Group, [{"name": "first"}, {"name": "second"}])
    assert len(queries) == 1
    assert [Group.objects.get(pk=pk).name for pk in ids] == ["first", "second"]


@pytest.mark.django_db
def test_update_rows_gives_each_row_its_own_values_in_one_statement():
    first, second = insert_rows(Group, [{"name": "a"}, {"name": "b"}])
    with CaptureQueriesContext(connection) as queries:
        assert update_rows(Group, [{"id": first, "name": "c"}, {"id": second, "name": "d"}], ["name"]) == 2
    assert len(queries) == 1
    assert sorted(Group.objects.values_list("name", flat=True)) == ["c", "d"]


@pytest.mark.django_db
def test_a_required_field_left_out_is_refused_before_any_sql():
    with CaptureQueriesContext(connection) as queries, pytest.raises(ValueError, match="Group.name is required"):
        insert_rows(Group, [{}])
    assert len(queries) == 0


def test_no_rows_no_statement():
    assert insert_rows(Group, []) == [] and update_rows(Group, [], ["name"]) == 0


@pytest.mark.django_db
def test_values_are_quoted_exactly_as_psycopg2_quotes_them():
    from datetime import date, datetime, timedelta, timezone
    from decimal import Decimal

    from core.sql import _QUOTE_BY_TYPE

    moscow = timezone(timedelta(hours=3))
    values = ["", "it's ''quoted''", "back\\slash \\N", "tab\there\nnew line\rcr", "ünïcode €", "%s %(name)s", 0, -5,
              10**20, True, False, None, Decimal("12.50"), Decimal("-0.01"), Decimal("1E+2"), Decimal("NaN"),
              datetime(2026, 12, 4, 12, 30, 15, 123456, tzinfo=timezone.utc), datetime(2026, 12, 4, 12, 30, tzinfo=moscow),
              datetime(2026, 12, 4, 12, 30), date(2026, 1, 2)]
    with connection.cursor() as cursor:
        psycopg2_quoted = [cursor.cursor.mogrify("%s", [value]).decode() for value in values]
        assert [_QUOTE_BY_TYPE[type(value)](value) for value in values] == psycopg2_quoted
        with pytest.raises(ValueError, match="NUL"):
            _QUOTE_BY_TYPE[str]("nul\x00")
        # And they come back as they went in.
        comparable = [value for value in values if value is not None and value == value]  # not NULL, not NaN
        cursor.execute("SELECT " + ", ".join(_QUOTE_BY_TYPE[type(value)](value) for value in comparable))
        assert list(cursor.fetchone()) == comparable


@pytest.mark.django_db
@pytest.mark.parametrize("conforming", ["on", "off"])
def test_strings_keep_their_backslashes_and_quotes_whatever_the_string_setting(conforming):
    name = "back\\slash \\N it's"
    with connection.cursor() as cursor:
        cursor.execute(f"SET LOCAL standard_conforming_strings = {conforming}")  # off: psycopg2 quotes them all
        [pk] = insert_rows(Group, [{"name": name}])
        update_rows(Group, [{"id": pk, "name": name + "!"}], ["name"])
    assert Group.objects.get(pk=pk).name == name + "!"


@pytest.mark.django_db
def test_an_unseen_key_filters_like_the_value_behind_a_subquery(customer):
    from accounts.models import Customer
    from core.sql import unseen_key

    queryset = Customer.objects.filter(pk=unseen_key(customer.pk))
    sql, params = queryset.query.sql_with_params()
    assert "= ((SELECT %s))" in sql and customer.pk in params  # the planner sees a parameter, not the key
    assert list(queryset) == [customer]
