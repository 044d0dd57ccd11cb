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
`values_list()` or `values()` queryset (a union of them too), into tuples or dicts. Stand-ins are
values no real row has: integers (`STAND_IN`, `STAND_IN_2`, ...), a text (`STAND_IN_TEXT`), dates
and times (`STAND_IN_DATE`, `STAND_IN_TIME`, ...); each call's values have the stand-ins' types (a query
without values, `CompiledQuery(build)`, takes none). An
integer or text stand-in may also appear inside a string parameter ("order:<id>", a LIKE pattern),
where the value's text replaces it. `STAND_IN_LIMIT` is a slice's bound (`qs[:depth]`, e.g. each
part of a union): its LIMIT becomes a parameter. Only for querysets whose SQL depends on nothing but
those values (no `now()`, no language), and not for writes. `CompiledRows` pages such a query for a
Paginator; `statement()` gives the bound SQL to run inside a larger statement.

With DB_PREPARED_STATEMENTS (on unless behind PgBouncer in transaction mode) each compiled SQL is a
server-side prepared statement of its connection (`execute_prepared`): PostgreSQL parses and plans it
once per connection instead of on every request (planning was 1.1 of the dashboard's 2.5 ms in PostgreSQL).
"""
from __future__ import annotations

import datetime as dt
import itertools
import re
from collections.abc import Callable
from decimal import Decimal

from django.conf import settings
from django.db import DatabaseError, connections
from django.db.models import Func, IntegerField, QuerySet
from django.db.models.query import ModelIterable, ValuesIterable, ValuesListIterable, get_related_populators

STAND_IN = -918273641
STAND_IN_2 = -918273642
STAND_IN_3 = -918273643
STAND_IN_TEXT = "stand-in:918273644"
STAND_IN_DATE = dt.date(1801, 2, 3)
STAND_IN_DATE_2 = dt.date(1802, 4, 5)
STAND_IN_TIME = dt.datetime(1801, 2, 3, 4, 5, 6, tzinfo=dt.UTC)
STAND_IN_TIME_2 = dt.datetime(1802, 4, 5, 6, 7, 8, tzinfo=dt.UTC)
STAND_IN_LIMIT = 918273640  # a LIMIT is written into the SQL, not a parameter: a positive number found there
_TYPES = (int, str, dt.date, dt.datetime)
# A page's row count for a Paginator: `.order_by().annotate(n=ROW_COUNT).values_list("n")`. COUNT(*) as a
# plain column, not an aggregate: the ORM adds no GROUP BY (grouping cost PostgreSQL ~0.2 ms).
ROW_COUNT = Func(template="COUNT(*)", output_field=IntegerField())


class CompiledQuery:
    def __init__(self, build: Callable[..., QuerySet], **stand_ins):
        if any(type(value) not in _TYPES for value in stand_ins.values()):  # none: a query of no values
            raise TypeError("CompiledQuery takes integer, text, date or datetime stand-ins by name")
        if len(set(stand_ins.values())) != len(stand_ins):
            raise ValueError("each stand-in needs its own value")
        self._build = build
        self._stand_ins = stand_ins
        self.names = frozenset(stand_ins)
        self._compiled: dict[int, tuple] = {}  # id(connection) -> what `_compile` returns (it holds the connection)

    def _compile(self, connection) -> tuple:
        queryset = self._build(**self._stand_ins)
        compiler = queryset.query.get_compiler(using=connection.alias)
        sql, params = compiler.as_sql()
        sql, params, slots, found = self._limits(sql, list(params))
        names = {(type(value), value): name for name, value in self._stand_ins.items()}
        texts = {str(value): name for name, value in self._stand_ins.items() if type(value) in (int, str) and value != STAND_IN_LIMIT}
        for index, param in enumerate(params):
            if slots[index] is not None or type(param) not in _TYPES:
                continue
            if (type(param), param) in names:
                slots[index] = (names[type(param), param], None)
                found.add(names[type(param), param])
            elif isinstance(param, str) and any(text in param for text in texts):
                slots[index] = (None, param)
                found.update(name for text, name in texts.items() if text in param)
        if found != set(self._stand_ins):
            raise ValueError(f"stand-ins not in the compiled query's parameters: {set(self._stand_ins) - found}")
        sql, params, slots = _inline_constants(connection, sql, params, slots)
        klass_info, select = compiler.klass_info, compiler.select
        converters = compiler.get_converters([column[0] for column in select[0:compiler.col_count]])
        if queryset._iterable_class not in (ModelIterable, ValuesListIterable, ValuesIterable):
            raise TypeError("CompiledQuery reads model instances, values_list() tuples or values() dicts")
        if queryset._iterable_class is not ModelIterable:  # values_list() tuples, values() dicts
            selected = [*queryset.query.extra_select, *queryset.query.values_select, *queryset.query.annotation_select]
            if queryset._fields and list(queryset._fields) != selected:
                raise ValueError(f"values_list{queryset._fields}: name the fields in the order they are selected ({selected})")
            start = end = populators = None
            init_list = selected if queryset._iterable_class is ValuesIterable else None
        else:
            model_fields = klass_info["select_fields"]
            start, end = model_fields[0], model_fields[-1] + 1
            init_list = [column[0].target.attname for column in select[start:end]]
            populators = get_related_populators(klass_info, select, connection.alias)
        sliced = queryset.query.low_mark != 0 or queryset.query.high_mark is not None
        model = klass_info["model"] if queryset._iterable_class is ModelIterable else None
        return (connection, compiler, sql, params, slots, model, start, end,
                init_list, converters, populators, compiler.annotation_col_map or {}, sliced)

    def _limits(self, sql: str, params: list) -> tuple[str, list, list, set]:
        """The SQL with each `LIMIT <STAND_IN_LIMIT>` as `LIMIT %s`, its parameter slot inserted where it stands."""
        name = next((name for name, value in self._stand_ins.items() if type(value) is int and value == STAND_IN_LIMIT), None)
        if name is None:
            return sql, params, [None] * len(params), set()
        pieces, slots, done = [], [], 0
        for match in re.finditer(rf"%%|%s|LIMIT {STAND_IN_LIMIT}\b", sql):
            if match.group() == "%s":
                slots.append(None)
            elif match.group() != "%%":
                pieces.append(sql[done:match.start()] + "LIMIT %s")
                done = match.end()
                params.insert(len(slots), STAND_IN_LIMIT)
                slots.append((name, None))
        return "".join(pieces) + sql[done:], params, slots, {name} if pieces else set()

    def __call__(self, *, using: str = "default", **values) -> list:
        return self.rows(0, None, using=using, **values)

    def statement(self, *, using: str = "default", **values) -> tuple[str, list]:
        """The compiled SQL and its parameters bound to `values` (to run inside a larger statement)."""
        compiled = self._compiled_for(connections[using], values)
        return compiled[2], self._bind(compiled, values)

    def _compiled_for(self, connection, values: dict) -> tuple:
        if set(values) != set(self._stand_ins) or any(type(value) is not type(self._stand_ins[name]) for name, value in values.items()):
            raise TypeError(f"CompiledQuery needs values of the stand-ins' types for {sorted(self._stand_ins)}")
        compiled = self._compiled.get(id(connection))
        if compiled is None:
            compiled = self._compiled[id(connection)] = self._compile(connection)
        return compiled

    def _bind(self, compiled: tuple, values: dict) -> list:
        params, slots = compiled[3], compiled[4]
        texts = {str(self._stand_ins[name]): str(value) for name, value in values.items()
                 if type(value) in (int, str) and self._stand_ins[name] != STAND_IN_LIMIT}
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

    def rows(self, start: int, stop: int | None, /, *, using: str = "default", **values) -> list:
        """The rows [start:stop] (LIMIT and OFFSET added to the SQL: for querysets compiled unsliced)."""
        connection = connections[using]
        compiled = self._compiled_for(connection, values)
        (_, compiler, sql, params, slots, model, first, end, init_list, converters, populators, annotations, sliced) = compiled
        bound = self._bind(compiled, values)
        if start or stop is not None:  # bound values: one prepared statement serves every page
            if sliced:
                raise ValueError("rows(start, stop) of a query compiled with a slice")
            if stop is not None:
                sql, bound = f"{sql} LIMIT %s OFFSET %s", [*bound, int(stop) - int(start), int(start)]
            else:
                sql, bound = f"{sql} OFFSET %s", [*bound, int(start)]
        with connection.cursor() as cursor:
            execute_prepared(cursor, sql, bound)
            rows = cursor.fetchall()
        if compiler.has_extra_select:
            rows = [row[:compiler.col_count] for row in rows]
        if converters:
            rows = compiler.apply_converters(rows, converters)
        if model is None:
            if init_list is not None:  # values()
                return [dict(zip(init_list, row)) for row in rows]
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


def _inline_constants(connection, sql: str, params: list, slots: list) -> tuple[str, list, list]:
    """The SQL with each parameter no stand-in fills (a status, a kind, a flag) written in as its literal,
    and the parameters and slots left. A prepared statement's generic plan then sees the constants as
    the ORM's SQL shows them: `status IN ('open', 'overdue')` matches a partial index's condition, which
    a `status IN ($2, $3)` cannot prove."""
    pairs = iter(zip(params, slots))
    kept_params, kept_slots = [], []

    def written(match) -> str:
        if match.group() == "%%":
            return "%%"
        param, slot = next(pairs)
        if slot is not None:
            kept_params.append(param)
            kept_slots.append(slot)
            return "%s"
        return connection.ops.compose_sql("%s", [param]).replace("%", "%%")

    return _PLACEHOLDER.sub(written, sql), kept_params, kept_slots


# Parameter types PostgreSQL is told when it prepares a statement (an integer column compares with a
# bigint through its index). Texts, lists and NULL it infers from where they stand ("unknown"), as it
# does for a literal: `status = $1` is a varchar (a declared text would compare the column as text).
_PREPARED_TYPES = {bool: "boolean", int: "bigint", dt.datetime: "timestamptz", dt.date: "date", Decimal: "numeric",
                   dt.timedelta: "interval"}
_PLACEHOLDER = re.compile(r"%%|%s")
_BIGINT_MIN, _BIGINT_MAX = -2**63, 2**63 - 1


def execute_prepared(cursor, sql: str, params: list) -> None:
    """Run `sql` (psycopg2's %s placeholders) with `params` as a prepared statement of the cursor's
    connection: the first call on a connection sends PREPARE (after a look at pg_prepared_statements; neither
    is counted as a query: once per connection, as a SET), every call EXECUTE with the values. Django's query log and tests see `EXECUTE cq<n>(...)`;
    `prepared_sql` gives its SQL. Without DB_PREPARED_STATEMENTS it runs `sql` as it is.

    A statement the server no longer has, or whose result type a migration changed ("cached plan must not
    change result type", until the connection is recycled), is prepared again: at once outside a
    transaction, else on the connection's next call (the transaction is aborted)."""
    if not settings.DB_PREPARED_STATEMENTS or any(type(value) is int and not _BIGINT_MIN <= value <= _BIGINT_MAX for value in params):
        cursor.execute(sql, params)  # an integer beyond bigint (a hostile id) is a numeric literal: it finds nothing
        return
    wrapper = cursor.db
    name = _STATEMENT_NAMES.get(sql)
    if name is None:
        name = _STATEMENT_NAMES.setdefault(sql, f"cq{next(_STATEMENT_NUMBERS)}")  # threads: one name per SQL
        _STATEMENT_SQL[name] = sql
    execute = f"EXECUTE {name}({', '.join(['%s'] * len(params))})" if params else f"EXECUTE {name}"
    for attempt in (1, 2):
        prepared = _prepared_on(wrapper)
        if name not in prepared:
            with wrapper.wrap_database_errors:  # Django's exceptions, as for any statement
                _prepare(wrapper.connection, name, sql, params)
            prepared.add(name)
        try:
            cursor.execute(execute, params)
            return
        except DatabaseError as error:
            if not _stale(error):
                raise
            prepared.discard(name)  # PREPARE replaces it (DEALLOCATE first) on the next attempt or call
            if attempt == 2 or wrapper.in_atomic_block:
                raise


def _prepared_on(wrapper) -> set[str]:
    """The names prepared on the wrapper's current psycopg2 connection (a new connection has none)."""
    raw = wrapper.connection
    prepared = wrapper.__dict__.get("_prepared_statements")
    if prepared is None or prepared[0] is not raw:  # its statements died with the old connection
        prepared = wrapper._prepared_statements = (raw, set())
    return prepared[1]


def _stale(error: DatabaseError) -> bool:
    """The EXECUTE failed for the prepared statement itself: gone, or its result type changed."""
    cause = error.__cause__
    code = getattr(cause, "pgcode", None)
    return code == "26000" or (code == "0A000" and "must not change result type" in str(cause))


# One name per SQL in this process (each connection prepares the names it runs).
_STATEMENT_NUMBERS = itertools.count()
_STATEMENT_NAMES: dict[str, str] = {}
_STATEMENT_SQL: dict[str, str] = {}


def prepared_sql(statement: str) -> str:
    """The SQL behind a logged `EXECUTE cq<n>(...)` (the statement itself for any other)."""
    match = re.match(r"EXECUTE (cq\d+)\b", statement)
    return _STATEMENT_SQL.get(match.group(1), statement) if match else statement


def _prepare(raw, name: str, sql: str, params: list) -> None:
    """PREPARE `sql` as `name` on the psycopg2 connection `raw`, replacing a statement of that name the
    bookkeeping lost track of (an exception between PREPARE and recording it) or gave up (stale). PREPARE
    is not transactional (a rollback keeps the statement); inside a transaction a savepoint keeps its
    failure from aborting it."""
    numbered = iter(range(1, len(params) + 1))
    body = _PLACEHOLDER.sub(lambda match: "%" if match.group() == "%%" else f"${next(numbered)}", sql)
    types = f"({', '.join(_PREPARED_TYPES.get(type(value), 'unknown') for value in params)})" if params else ""
    guarded = not raw.autocommit
    with raw.cursor() as cursor:
        if guarded:
            cursor.execute("SAVEPOINT prepare_compiled")
        try:
            cursor.execute("SELECT EXISTS (SELECT FROM pg_prepared_statements WHERE name = %s)", [name])
            if cursor.fetchone()[0]:
                cursor.execute(f"DEALLOCATE {name}")
            cursor.execute(f"PREPARE {name}{types} AS {body}")
        except Exception:
            if guarded:
                cursor.execute("ROLLBACK TO SAVEPOINT prepare_compiled")
            raise
        if guarded:
            cursor.execute("RELEASE SAVEPOINT prepare_compiled")


class CompiledRows:
    """A compiled query's rows for a Paginator whose count is known (`paginator.count` set): slices run it.
    `depth`: the name of a `STAND_IN_LIMIT` value each slice sets to its stop (a union's parts then
    read no further than the page's end)."""

    def __init__(self, query: CompiledQuery, *, depth: str | None = None, **values):
        self._query, self._depth, self._values = query, depth, values

    def __getitem__(self, index):
        if not isinstance(index, slice) or index.step is not None or (self._depth and index.stop is None):
            raise TypeError("CompiledRows takes slices (with a stop, for a depth)")
        if index.stop is not None and index.stop <= (index.start or 0):
            return []  # as a queryset's empty slice: no query (a Paginator's page of nothing)
        values = {**self._values, self._depth: index.stop} if self._depth else self._values
        return self._query.rows(index.start or 0, index.stop, **values)
