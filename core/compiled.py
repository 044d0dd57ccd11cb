"""Model queries the ORM builds and compiles once per process, then runs with each call's values.

Building and compiling a queryset costs the ORM ~0.3 ms of CPU, plus ~8 us per selected column and
~0.35 ms per subquery annotation: an order read with its plan, its VM and three subqueries took ~2 ms,
PostgreSQL ~0.05 ms to answer it. A page that reads the same shape of query on every request can
declare it once:

    EVENTS = CompiledQuery(lambda order_id: OrderEvent.objects.filter(order_id=order_id)..., order_id=STAND_IN)
    events = EVENTS(order_id=order.pk)

The ORM builds the queryset with the stand-in values and compiles it (per database connection), the
SQL is kept, and each call binds its own values and turns the rows into model instances as
`ModelIterable` does (the ORM's converters, select_related objects, annotations), or, for a
`values_list()` queryset, into tuples. Stand-ins are
integers no real row has (`STAND_IN`, `STAND_IN_2`, ...); a stand-in may also appear inside a string
parameter ("order:<id>", a LIKE pattern), where the value's digits replace it. The values are
integers too, or aware datetimes for a `STAND_IN_TIME` stand-in (a moment the query compares with).
A query without values (the enabled currencies) takes no stand-ins. Only for querysets whose SQL
depends on nothing but those values (no `now()`, no language), and not for writes. `CompiledRows` pages such a query for a Paginator; `statement()` gives the bound SQL to
wrap in a larger statement.
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from django.db import connections
from django.db.models import QuerySet
from django.db.models.query import ModelIterable, ValuesListIterable, get_related_populators

STAND_IN = -918273641
STAND_IN_2 = -918273642
STAND_IN_3 = -918273643
STAND_IN_TIME = dt.datetime(1901, 2, 3, 4, 5, 6, 789012, tzinfo=dt.timezone.utc)
_STAND_IN_TYPES = (int, dt.datetime)


class CompiledQuery:
    def __init__(self, build: Callable[..., QuerySet], **stand_ins: int):
        if any(type(value) not in _STAND_IN_TYPES for value in stand_ins.values()):
            raise TypeError("CompiledQuery takes integer or datetime stand-ins by name")
        self._build = build
        self._stand_ins = stand_ins
        self._compiled: dict[int, tuple] = {}  # id(connection) -> what `_compile` returns (it holds the connection)

    def _compile(self, connection) -> tuple:
        queryset = self._build(**self._stand_ins)
        compiler = queryset.query.get_compiler(using=connection.alias)
        sql, params = compiler.as_sql()
        names = {str(value): name for name, value in self._stand_ins.items()}
        slots, found = [], set()
        for param in params:
            if type(param) in _STAND_IN_TYPES and str(param) in names:
                slots.append((names[str(param)], None))
                found.add(names[str(param)])
            elif isinstance(param, str) and any(text in param for text in names):
                slots.append((None, param))
                found.update(name for text, name in names.items() if text in param)
            else:
                slots.append(None)
        if found != set(self._stand_ins):
            raise ValueError(f"stand-ins not in the compiled query's parameters: {set(self._stand_ins) - found}")
        klass_info, select = compiler.klass_info, compiler.select
        converters = compiler.get_converters([column[0] for column in select[0:compiler.col_count]])
        if queryset._iterable_class not in (ModelIterable, ValuesListIterable):
            raise TypeError("CompiledQuery reads model instances or values_list() tuples")
        if queryset._iterable_class is ValuesListIterable:  # values_list(): the rows are tuples
            selected = [*queryset.query.extra_select, *queryset.query.values_select, *queryset.query.annotation_select]
            if queryset._fields and list(queryset._fields) != selected:
                raise ValueError(f"values_list{queryset._fields}: name the fields in the order they are selected ({selected})")
            start = end = init_list = populators = None
        else:
            model_fields = klass_info["select_fields"]
            start, end = model_fields[0], model_fields[-1] + 1
            init_list = [column[0].target.attname for column in select[start:end]]
            populators = get_related_populators(klass_info, select, connection.alias)
        sliced = queryset.query.low_mark != 0 or queryset.query.high_mark is not None
        return (connection, compiler, sql, params, slots, None if init_list is None else klass_info["model"], start, end,
                init_list, converters, populators, compiler.annotation_col_map or {}, sliced)

    def __call__(self, *, using: str = "default", **values) -> list:
        return self.rows(0, None, using=using, **values)

    def statement(self, *, using: str = "default", **values) -> tuple[str, list]:
        """The compiled SQL and its parameters bound to `values` (to run inside a larger statement)."""
        compiled = self._compiled_for(connections[using], values)
        return compiled[2], self._bind(compiled, values)

    def _compiled_for(self, connection, values: dict) -> tuple:
        if set(values) != set(self._stand_ins) or any(
                type(value) is not type(self._stand_ins[name]) for name, value in values.items()
                if name in self._stand_ins):
            raise TypeError(f"CompiledQuery needs values of the stand-ins' types for {sorted(self._stand_ins)}")
        compiled = self._compiled.get(id(connection))
        if compiled is None:
            compiled = self._compiled[id(connection)] = self._compile(connection)
        return compiled

    def _bind(self, compiled: tuple, values: dict) -> list:
        params, slots = compiled[3], compiled[4]
        texts = {str(self._stand_ins[name]): str(value) for name, value in values.items()}
        bound = []
        for param, slot in zip(params, slots):
            if slot is None:
                bound.append(param)
            elif slot[0] is not None:
                bound.append(values[slot[0]])
            else:
                for text, value in texts.items():
                    param = param.replace(text, value)
                bound.append(param)
        return bound

    def rows(self, start: int, stop: int | None, *, using: str = "default", **values) -> list:
        """The rows [start:stop] (LIMIT and OFFSET added to the SQL: for querysets compiled unsliced)."""
        connection = connections[using]
        compiled = self._compiled_for(connection, values)
        (_, compiler, sql, params, slots, model, first, end, init_list, converters, populators, annotations, sliced) = compiled
        if start or stop is not None:
            if sliced:
                raise ValueError("rows(start, stop) of a query compiled with a slice")
            sql = f"{sql} LIMIT {int(stop) - int(start)} OFFSET {int(start)}" if stop is not None else f"{sql} OFFSET {int(start)}"
        bound = self._bind(compiled, values)
        with connection.cursor() as cursor:
            cursor.execute(sql, bound)
            rows = cursor.fetchall()
        if compiler.has_extra_select:
            rows = [row[:compiler.col_count] for row in rows]
        if converters:
            rows = compiler.apply_converters(rows, converters)
        if model is None:
            return [tuple(row) for row in rows]
        objects = []
        for row in rows:
            obj = model.from_db(using, init_list, row[first:end])
            for populator in populators:
                populator.populate(row, obj)
            for name, position in annotations.items():
                setattr(obj, name, row[position])
            objects.append(obj)
        return objects


class CompiledRows:
    """A compiled query's rows for a Paginator whose count is known (`paginator.count` set): slices run it."""

    def __init__(self, query: CompiledQuery, **values: int):
        self._query, self._values = query, values

    def __getitem__(self, index):
        if not isinstance(index, slice) or index.step is not None:
            raise TypeError("CompiledRows takes slices")
        return self._query.rows(index.start or 0, index.stop, **self._values)
