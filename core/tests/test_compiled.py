"""core.compiled: a queryset compiled once reads what the ORM reads, for every call's values."""
import datetime as dt
from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.db import DatabaseError, connection, transaction
from django.db.models import Count, Q
from django.test.utils import CaptureQueriesContext

from core.compiled import (
    STAND_IN, STAND_IN_2, STAND_IN_LIMIT, STAND_IN_TEXT, STAND_IN_TIME, CompiledQuery, CompiledRows, execute_prepared,
    prepared_sql,
)

pytestmark = pytest.mark.django_db


def _permissions(group_id: int, content_type_id: int):
    return (Permission.objects.filter(Q(group__id=group_id) | Q(codename__startswith=f"x{group_id}:"),
                                      content_type_id=content_type_id)
            .select_related("content_type").annotate(groups=Count("group")).order_by("codename"))


def test_each_call_reads_what_the_orm_reads_with_its_own_values_in_one_query():
    query = CompiledQuery(_permissions, group_id=STAND_IN, content_type_id=STAND_IN_2)
    permissions = list(Permission.objects.select_related("content_type").order_by("pk")[:6])
    first, second = Group.objects.create(name="first"), Group.objects.create(name="second")
    first.permissions.add(*permissions[:3])
    second.permissions.add(*permissions[3:])
    content_type_id = permissions[0].content_type_id
    Permission.objects.create(codename=f"x{second.pk}:extra", name="extra", content_type_id=content_type_id)
    for group in (first, second, first):
        with CaptureQueriesContext(connection) as queries:
            found = query(group_id=group.pk, content_type_id=content_type_id)
        assert len(queries) == 1
        expected = list(_permissions(group.pk, content_type_id))
        assert expected and [(p.pk, p.codename, p.groups, p.content_type.model) for p in found] == [
            (p.pk, p.codename, p.groups, p.content_type.model) for p in expected]
        assert found[0].content_type == expected[0].content_type and not found[0]._state.adding
    assert query(group_id=-1, content_type_id=content_type_id) == []


def test_stand_ins_must_be_integers_found_in_the_query_and_values_given_for_each():
    with pytest.raises(TypeError):
        CompiledQuery(_permissions, group_id=1.5, content_type_id=STAND_IN_2)
    with pytest.raises(ValueError, match="own value"):
        CompiledQuery(_permissions, group_id=STAND_IN, content_type_id=STAND_IN)
    with pytest.raises(ValueError, match="content_type_id"):
        CompiledQuery(lambda group_id, content_type_id: Permission.objects.filter(group__id=group_id),
                      group_id=STAND_IN, content_type_id=STAND_IN_2)(group_id=1, content_type_id=2)
    query = CompiledQuery(_permissions, group_id=STAND_IN, content_type_id=STAND_IN_2)
    with pytest.raises(TypeError):
        query(group_id=1)
    with pytest.raises(TypeError):
        query(group_id="1", content_type_id=2)


def test_a_values_list_query_gives_tuples():
    query = CompiledQuery(lambda group_id: Group.objects.filter(pk=group_id).values_list("name", "pk"), group_id=STAND_IN)
    group = Group.objects.create(name="g")
    assert query(group_id=group.pk) == [("g", group.pk)] and query(group_id=-5) == []
    assert CompiledQuery(lambda group_id: Group.objects.filter(pk=group_id).values("name", "pk"), group_id=STAND_IN)(
        group_id=group.pk) == [{"name": "g", "pk": group.pk}]
    with pytest.raises(TypeError):
        CompiledQuery(lambda group_id: Group.objects.filter(pk=group_id).values_list("name", named=True), group_id=STAND_IN)(group_id=1)
    with pytest.raises(ValueError, match="order"):
        CompiledQuery(lambda group_id: Group.objects.filter(pk=group_id).annotate(n=Count("permissions")).values_list("n", "name"),
                      group_id=STAND_IN)(group_id=1)


def test_text_and_time_stand_ins_take_each_call_s_values_of_their_type(django_user_model):
    def build(name, since):
        return (django_user_model.objects.filter(Q(username=name) | Q(username__startswith=f"{name}-"), date_joined__gte=since)
                .order_by("username").values_list("username"))

    query = CompiledQuery(build, name=STAND_IN_TEXT, since=STAND_IN_TIME)
    then = dt.datetime(2026, 1, 2, tzinfo=dt.UTC)
    for username, joined in (("ann", then), ("ann-2", then), ("annie", then), ("bob", then), ("bob-old", then - dt.timedelta(days=1))):
        django_user_model.objects.create(username=username, email=f"{username}@example.com", date_joined=joined)
    for name in ("ann", "bob", "carl"):
        assert query(name=name, since=then) == list(build(name, then))
    assert query(name="ann", since=then) == [("ann",), ("ann-2",)] and query(name="bob", since=then - dt.timedelta(days=2)) == [
        ("bob",), ("bob-old",)]
    with pytest.raises(TypeError):
        query(name="ann", since=then.date())  # a date for a datetime stand-in


def test_a_limit_stand_in_bounds_each_part_of_a_union_by_the_call_s_value():
    """STAND_IN_LIMIT: `qs[:depth]` becomes `LIMIT %s`; CompiledRows sets it to each slice's stop."""
    def build(depth):
        return (Group.objects.filter(name__startswith="a").order_by("-name").values_list("name")[:depth]
                .union(Group.objects.filter(name__startswith="b").order_by("-name").values_list("name")[:depth], all=True)
                .order_by("-name"))

    Group.objects.bulk_create([Group(name=f"{letter}{n}") for letter in "ab" for n in range(5)])
    query = CompiledQuery(build, depth=STAND_IN_LIMIT)
    names = sorted((name for name, in Group.objects.values_list("name")), reverse=True)
    assert query(depth=2) == [("b4",), ("b3",), ("a4",), ("a3",)]
    rows = CompiledRows(query, depth="depth")
    with CaptureQueriesContext(connection) as queries:
        assert [rows[start:start + 3] for start in range(0, 12, 3)] == [
            [(name,) for name in names[start:start + 3]] for start in range(0, 12, 3)]
    assert "LIMIT %s)" in prepared_sql(queries[1]["sql"]) and prepared_sql(queries[1]["sql"]).endswith("LIMIT %s OFFSET %s")
    assert queries[1]["sql"].endswith("(6, 6, 3, 3)")  # depth 6: the slice [3:6] (the patterns are constants)
    with pytest.raises(TypeError):
        rows[3:]


def test_the_bound_statement_runs_inside_a_larger_one():
    users = get_user_model().objects
    joined = CompiledQuery(lambda since, before: users.filter(date_joined__gte=since, pk__lt=before).order_by("pk")
                           .values_list("pk"), since=STAND_IN_TIME, before=STAND_IN)
    moment = dt.datetime(2027, 1, 1, tzinfo=dt.UTC)
    new = users.create(username="new", email="new@example.com", date_joined=moment)
    users.create(username="old", email="old@example.com", date_joined=moment - dt.timedelta(days=1))
    sql, params = joined.statement(since=moment, before=new.pk + 1)
    assert moment in params and new.pk + 1 in params
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT array_agg(pk) FROM ({sql}) AS rows (pk)", params)
        assert cursor.fetchone() == ([new.pk],)
    with pytest.raises(TypeError):
        joined.statement(since=moment.date(), before=1)


def test_an_empty_slice_of_compiled_rows_runs_no_query():
    """A Paginator's page of nothing (no rows counted) asks for [0:0]: no query, as a queryset's empty slice."""
    rows = CompiledRows(CompiledQuery(lambda group_id: Group.objects.filter(pk=group_id).values_list("name"), group_id=STAND_IN),
                        group_id=1)
    with CaptureQueriesContext(connection) as queries:
        assert rows[0:0] == [] and rows[5:5] == []
    assert len(queries) == 0


def test_a_query_without_values_is_compiled_once_too():
    query = CompiledQuery(lambda: Group.objects.filter(name__startswith="n").order_by("name"))
    Group.objects.bulk_create([Group(name="n2"), Group(name="n1"), Group(name="m")])
    assert [group.name for group in query()] == ["n1", "n2"] and not query()[0]._state.adding
    with pytest.raises(TypeError):
        query(name="n")


def _prepared_statements() -> dict[str, str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT name, statement FROM pg_prepared_statements")
        return dict(cursor.fetchall())


def _groups(name: str, since: dt.datetime):
    return (Group.objects.filter(name__startswith=name, user__date_joined__gte=since, user__is_active=True)
            .values_list("name").distinct().order_by("name"))


def test_a_compiled_query_is_prepared_once_per_connection_and_every_page_shares_its_statement(django_user_model):
    """PostgreSQL plans it once per connection; a page's LIMIT and OFFSET are values, not new statements."""
    query = _group_names()
    Group.objects.bulk_create([Group(name=f"p{n}") for n in range(7)])
    rows = CompiledRows(query, name="p")
    with CaptureQueriesContext(connection) as queries:
        pages = [rows[start:start + 3] for start in range(0, 9, 3)] + [query(name="p1"), rows[6:None]]
    assert pages == [[("p0",), ("p1",), ("p2",)], [("p3",), ("p4",), ("p5",)], [("p6",)], [("p1",)], [("p6",)]]
    names = [q["sql"].split("(")[0].removeprefix("EXECUTE ") for q in queries]
    assert names[0] == names[1] == names[2] and len(set(names)) == 3  # pages; the whole query; from an offset
    prepared = _prepared_statements()
    assert set(names) <= set(prepared) and prepared[names[0]].endswith("LIMIT $2 OFFSET $3")
    assert prepared_sql(queries[0]["sql"]).endswith("LIMIT %s OFFSET %s") and queries[0]["sql"].endswith("('p%', 3, 0)")


@pytest.mark.django_db(transaction=True)
def test_prepared_statements_outlive_a_rollback_and_are_prepared_again_on_a_new_connection(django_user_model):
    since = dt.datetime(2026, 2, 28, 23, 30, tzinfo=dt.UTC)
    query = CompiledQuery(_groups, name=STAND_IN_TEXT, since=STAND_IN_TIME)
    group = Group.objects.create(name="team")
    user = django_user_model.objects.create(username="u", date_joined=since)
    user.groups.add(group)
    with pytest.raises(RuntimeError), transaction.atomic():
        assert query(name="te", since=since) == [("team",)]  # prepared inside a transaction ...
        raise RuntimeError
    assert query(name="te", since=since) == [("team",)]  # ... which rolled back: the statement stays
    assert query(name="te", since=since + dt.timedelta(seconds=1)) == []  # the datetime compares as a timestamptz
    connection.close()
    assert query(name="te", since=since) == [("team",)]  # a new connection prepares it again


def test_a_failing_prepare_inside_a_transaction_leaves_it_usable():
    with transaction.atomic():
        Group.objects.create(name="kept")
        with pytest.raises(DatabaseError), connection.cursor() as cursor:
            execute_prepared(cursor, "SELECT %s + %s", [None, None])  # PostgreSQL cannot tell the types
        assert Group.objects.filter(name="kept").exists()
    assert not [sql for sql in _prepared_statements().values() if "$1 + $2" in sql]


def test_declared_types_and_inferred_ones_give_the_orm_s_answers():
    """Datetimes, dates, decimals, booleans, intervals and integers (bigint) are declared; texts and lists inferred."""
    sql = ("SELECT %s::text, %s + %s, %s::date + 1, %s AND TRUE, %s * 2, %s || '!', "
           "%s = ANY(ARRAY[1, 2]), 3 = ANY(%s), now() - %s < interval '100 years', %s * 3")
    moment = dt.datetime(2028, 2, 29, 23, 59, 59, 999999, tzinfo=dt.UTC)
    params = [moment, moment, dt.timedelta(days=1), dt.date(2026, 12, 31), True, Decimal("0.005"), "text", 2, [1, 3], moment,
              2**40]
    with connection.cursor() as cursor:
        execute_prepared(cursor, sql, params)
        prepared = cursor.fetchone()
        cursor.execute(sql, params)
        assert prepared == cursor.fetchone()
        assert prepared[1] == dt.datetime(2028, 3, 1, 23, 59, 59, 999999, tzinfo=dt.UTC) and prepared[4] == Decimal("0.010")


def test_without_prepared_statements_the_sql_runs_as_it_is(settings):
    settings.DB_PREPARED_STATEMENTS = False
    query = CompiledQuery(lambda name: Group.objects.filter(name=name).values_list("name"), name=STAND_IN_TEXT)
    Group.objects.create(name="plain")
    with CaptureQueriesContext(connection) as queries:
        assert query(name="plain") == [("plain",)]
    assert queries[0]["sql"].startswith("SELECT")


@pytest.mark.parametrize("prepared", [True, False])
def test_constants_are_written_into_the_sql_and_only_stand_ins_stay_parameters(settings, prepared):
    """A generic plan sees `name IN ('a', 'b')` as the ORM wrote it (a partial index's condition can match);
    a constant with a % (a LIKE pattern) reads the same rows prepared or not."""
    settings.DB_PREPARED_STATEMENTS = prepared
    query = CompiledQuery(lambda since: Group.objects.filter(Q(name__in=["50% off", "b"]) | Q(name__startswith="50%"),
                                                             pk__gte=since).order_by("name").values_list("name"),
                          since=STAND_IN)
    Group.objects.bulk_create([Group(name=name) for name in ("50% off", "50%", "500", "b", "c")])
    sql, params = query.statement(since=0)
    assert params == [0] and "IN ('50%% off', 'b')" in sql and "LIKE '50\\%%%%'" in sql  # psycopg2 makes %% of %
    assert query(since=0) == [("50%",), ("50% off",), ("b",)] == list(
        Group.objects.filter(Q(name__in=["50% off", "b"]) | Q(name__startswith="50%")).order_by("name").values_list("name"))


def _group_names():
    return CompiledQuery(lambda name: Group.objects.filter(name__startswith=name).order_by("name").values_list("name"),
                         name=STAND_IN_TEXT)


def _alter_group_name(cursor, length: int) -> None:
    cursor.execute(f'ALTER TABLE "auth_group" ALTER COLUMN "name" TYPE varchar({length})')


@pytest.mark.django_db(transaction=True)
def test_a_statement_whose_result_type_a_migration_changed_is_prepared_again():
    """"cached plan must not change result type" until the connection is recycled, otherwise: outside a
    transaction the call prepares it again at once; inside one the transaction fails and the next call works."""
    query = _group_names()
    Group.objects.create(name="kept")
    assert query(name="k") == [("kept",)]
    try:
        with connection.cursor() as cursor:
            _alter_group_name(cursor, 200)
        assert query(name="k") == [("kept",)]
        with pytest.raises(DatabaseError), transaction.atomic():
            with connection.cursor() as cursor:
                _alter_group_name(cursor, 150)
            query(name="k")
        assert query(name="k") == [("kept",)]  # the rollback undid the ALTER: varchar(200) again, prepared again
    finally:
        with connection.cursor() as cursor:
            _alter_group_name(cursor, 150)
    assert query(name="k") == [("kept",)]


@pytest.mark.django_db(transaction=True)
def test_a_statement_the_server_lost_is_prepared_again():
    query = _group_names()
    Group.objects.create(name="kept")
    assert query(name="k") == [("kept",)]
    with connection.connection.cursor() as cursor:
        cursor.execute("DEALLOCATE ALL")  # behind the bookkeeping's back
    assert query(name="k") == [("kept",)]


def test_a_statement_the_bookkeeping_lost_is_replaced():
    """An exception between PREPARE and recording it (a Celery soft time limit) must not leave every later
    call failing with "prepared statement already exists"."""
    query = _group_names()
    Group.objects.create(name="kept")
    assert query(name="k") == [("kept",)]
    connection._prepared_statements[1].clear()
    assert query(name="k") == [("kept",)]  # PREPARE again would say "already exists": it is replaced
