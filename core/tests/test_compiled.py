"""core.compiled: a queryset compiled once reads what the ORM reads, for every call's values."""
import pytest
from django.contrib.auth.models import Group, Permission
from django.db import connection
from django.db.models import Count, Q
from django.test.utils import CaptureQueriesContext

from core.compiled import STAND_IN, STAND_IN_2, STAND_IN_TIME, CompiledQuery

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
        CompiledQuery(_permissions, group_id="1", content_type_id=STAND_IN_2)
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
    with pytest.raises(TypeError):
        CompiledQuery(lambda group_id: Group.objects.filter(pk=group_id).values("name"), group_id=STAND_IN)(group_id=1)
    with pytest.raises(ValueError, match="order"):
        CompiledQuery(lambda group_id: Group.objects.filter(pk=group_id).annotate(n=Count("permissions")).values_list("n", "name"),
                      group_id=STAND_IN)(group_id=1)


def test_a_datetime_stand_in_a_query_without_values_and_the_bound_statement():
    from datetime import datetime, timedelta, timezone

    from accounts.tests.factories import UserFactory
    from django.contrib.auth import get_user_model

    users = get_user_model().objects
    joined = CompiledQuery(lambda since, before: users.filter(date_joined__gte=since, pk__lt=before).order_by("pk")
                           .values_list("pk"), since=STAND_IN_TIME, before=STAND_IN)
    old, new = UserFactory(), UserFactory()
    moment = datetime(2027, 1, 1, tzinfo=timezone.utc)
    users.filter(pk=old.pk).update(date_joined=moment - timedelta(days=1))
    users.filter(pk=new.pk).update(date_joined=moment)
    assert joined(since=moment, before=new.pk + 1) == [(new.pk,)]
    assert joined(since=moment - timedelta(days=1), before=new.pk + 1) == [(old.pk,), (new.pk,)]
    with pytest.raises(TypeError):
        joined(since=moment.date(), before=1)  # a value of another type than its stand-in
    sql, params = joined.statement(since=moment, before=-7)
    assert moment in params and -7 in params and "%s" in sql
    with connection.cursor() as cursor:  # wrapped in a larger statement
        cursor.execute(f"SELECT count(*) FROM ({sql}) rows", params)
        assert cursor.fetchone() == (0,)
    every = CompiledQuery(lambda: Group.objects.order_by("name").values_list("name"))
    Group.objects.create(name="b"), Group.objects.create(name="a")
    assert every() == [("a",), ("b",)]
