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
