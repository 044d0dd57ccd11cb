"""Set-based SQL for batch jobs: one INSERT or UPDATE statement for many rows, through Django's cursor.

`insert_rows` fills omitted fields with the model's defaults (auto_now/auto_now_add with the same
`now`); `copy_rows` does the same through COPY (no ON CONFLICT, cheaper for many rows); `update_rows`
gives each row its own values. Neither sends signals nor calls `save()`: callers
(billing.bulk, notifications.bulk, orders' set-based renewal) write exactly what the single-row path
would, and tests pin their statement counts. JSON fields are adapted; values are quoted as psycopg2
quotes them.

Batch jobs pass thousands of rows, so the per-row work is kept small: what each field needs is worked
out once per call, and the common types (str, int, bool, None, Decimal, date, datetime) are quoted
here the way psycopg2 quotes them, at a fraction of its cost (`_QUOTE_BY_TYPE`); others go to psycopg2.
"""
import io
import json
from datetime import date, datetime, time
from decimal import Decimal

from django.db import connection, models
from django.utils import timezone
from psycopg2.extras import Json

_MISSING = object()


def _field_defaults(model, now) -> list[tuple[models.Field, object]]:
    fields = []
    for model_field in model._meta.concrete_fields:
        if model_field.primary_key:
            continue
        if getattr(model_field, "auto_now_add", False) or getattr(model_field, "auto_now", False):
            default = now
        elif model_field.has_default() or model_field.null or (model_field.blank and model_field.empty_strings_allowed):
            default = model_field.get_default()  # the model default, else None or ""
        else:
            default = _MISSING
        fields.append((model_field, default))
    return fields


class JsonText(str):
    """A JSON value the caller already serialized with `json.dumps()` (e.g. to validate it): stored as it
    is instead of being serialized a second time."""


def _json(value):
    if value is None:
        return None
    if isinstance(value, JsonText):
        return str(value)  # quoted as text: PostgreSQL reads the literal as JSON, as it does Json's
    return Json(value, dumps=json.dumps)


def _values(model, fields: list[tuple[models.Field, object]], rows: list[dict]) -> list[list]:
    """Each row's values in the order of `fields`, the model default where a row leaves one out; a
    required one is refused (before any SQL)."""
    required = {field.attname for field, default in fields if default is _MISSING}
    for row in rows:
        if not required <= row.keys():
            missing = next(field for field, _d in fields if field.attname in required - row.keys())
            raise ValueError(f"{model.__name__}.{missing.attname} is required")
    names = [(field.attname, default) for field, default in fields]
    return [[row.get(name, default) for name, default in names] for row in rows]


def _quote_str(value: str) -> str:
    if "\x00" in value:
        raise ValueError("A string literal cannot contain NUL (0x00) characters.")  # as psycopg2 refuses it
    return "'" + value.replace("'", "''") + "'"


def _quote_datetime(value: datetime) -> str:
    return f"'{value.isoformat()}'::{'timestamp' if value.tzinfo is None else 'timestamptz'}"


def _quote_number(value: int | Decimal) -> str:
    if isinstance(value, Decimal) and not value.is_finite():
        return f"'{value}'::numeric"  # psycopg2 writes Infinity as NaN
    return str(value) if value >= 0 else f" {value}"  # the space: never "--", a comment (as psycopg2)


# What psycopg2 writes for these exact types, at a fraction of its cost per value (about 1-2.5 µs; a
# renewal chunk quotes some 100,000 values). Strings need standard_conforming_strings (the default
# since PostgreSQL 9.1): a quote is the only character to double. Anything else goes to psycopg2.
_QUOTE_BY_TYPE = {
    str: _quote_str, int: _quote_number, bool: lambda value: "true" if value else "false", type(None): lambda _value: "NULL",
    Decimal: _quote_number, datetime: _quote_datetime, date: lambda value: f"'{value.isoformat()}'::date",
}


def _adapt_in_place(rows: list[list], adapters: list) -> None:
    adapting = [(index, adapt) for index, adapt in enumerate(adapters) if adapt is not None]
    for row in rows if adapting else ():
        for index, adapt in adapting:
            row[index] = adapt(row[index])


def _values_sql(cursor, rows: list[list], adapters: list) -> str:
    """`(…), (…)` for VALUES, each value quoted as execute() would quote it. Adapts `rows` (lists of the
    caller's own) in place."""
    _adapt_in_place(rows, adapters)
    if cursor.connection.get_parameter_status("standard_conforming_strings") != "on":
        template = "(" + ", ".join(["%s"] * len(adapters)) + ")"
        return cursor.mogrify(", ".join([template] * len(rows)), [value for row in rows for value in row]).decode()

    def by_psycopg2(value) -> str:
        return cursor.mogrify("%s", [value]).decode()

    quoter = _QUOTE_BY_TYPE.get
    return ", ".join(["(" + ", ".join([quoter(type(value), by_psycopg2)(value) for value in row]) + ")"
                      for row in rows])


def _names(columns) -> str:
    return ", ".join(f'"{column}"' for column in columns)


def _adapter(field: models.Field):
    return _json if isinstance(field, models.JSONField) else None


def insert_rows(model, rows: list[dict], *, returning: str | tuple[str, ...] | None = "id", on_conflict: str = "") -> list:
    """INSERT many rows of `model` (dicts by attname; omitted fields take their model default) in one
    statement. Returns the `returning` column per inserted row, in the order given."""
    if not rows:
        return []
    fields = _field_defaults(model, timezone.now())
    values = _values(model, fields, rows)
    columns = (returning,) if isinstance(returning, str) else returning or ()
    with connection.cursor() as cursor:
        cursor.execute(
            f'INSERT INTO "{model._meta.db_table}" ({_names(f.column for f, _d in fields)}) '
            f"VALUES {_values_sql(cursor.cursor, values, [_adapter(f) for f, _d in fields])} {on_conflict}"
            + (f" RETURNING {_names(columns)}" if columns else ""))
        if not columns:
            return []
        return [row[0] for row in cursor.fetchall()] if isinstance(returning, str) else cursor.fetchall()


_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _copy_value(value) -> str:
    """One value in COPY's text format (as `execute` would quote it, minus the SQL)."""
    if value is None:
        return "\\N"
    if isinstance(value, bool):
        return "t" if value else "f"
    if hasattr(value, "isoformat"):
        value = value.isoformat()
    return str(value).translate(_COPY_ESCAPES)


def _copy_json(value) -> str:
    if value is None or isinstance(value, bool):
        return _copy_value(value)
    if isinstance(value, JsonText):
        return value.translate(_COPY_ESCAPES)
    return json.dumps(value).translate(_COPY_ESCAPES)


# The common types without `_copy_value`'s checks (exact types: a subclass may print otherwise).
_COPY_BY_TYPE = {
    str: lambda value: value.translate(_COPY_ESCAPES), int: str, Decimal: str, type(None): lambda _value: "\\N",
    bool: lambda value: "t" if value else "f", datetime: datetime.isoformat, date: date.isoformat, time: time.isoformat,
}


def _copy_line(row: list, converters: list) -> str:
    by_type = _COPY_BY_TYPE
    return "\t".join([convert(value) if convert is not None else by_type.get(type(value), _copy_value)(value)
                      for convert, value in zip(converters, row)])


def copy_rows(model, rows: list[dict], *, with_ids: bool = False) -> list[int]:
    """`insert_rows` without ON CONFLICT, through COPY: no per-row quoting with mogrify and a cheaper
    parse for PostgreSQL. Insert triggers (the ledger's balanced-legs check) still run. COPY returns
    nothing: `with_ids` takes the primary keys from the table's sequence first (one statement) and
    returns them in the order given. (Django's query log does not see the COPY itself.)"""
    if not rows:
        return []
    fields = _field_defaults(model, timezone.now())
    values = _values(model, fields, rows)
    ids = []
    if with_ids:
        pk = model._meta.pk
        with connection.cursor() as cursor:
            cursor.execute("SELECT nextval(pg_get_serial_sequence(%s, %s)) FROM generate_series(1, %s)",
                           [model._meta.db_table, pk.column, len(rows)])
            ids = [row[0] for row in cursor.fetchall()]
        values = [[pk_value, *row] for row, pk_value in zip(values, ids)]
        fields = [(pk, _MISSING), *fields]
    converters = [_copy_json if isinstance(field, models.JSONField) else None for field, _d in fields]
    text = "".join([_copy_line(row, converters) + "\n" for row in values])
    columns = ", ".join(f'"{f.column}"' for f, _d in fields)
    with connection.cursor() as cursor:
        cursor.cursor.copy_expert(f'COPY "{model._meta.db_table}" ({columns}) FROM STDIN', io.StringIO(text))
    return ids


def update_rows(model, rows: list[dict], fields: list[str], *, key: str = "id") -> int:
    """UPDATE many rows of `model`, each to its own values, in one statement (`rows` are dicts with
    `key` and every name in `fields`)."""
    if not rows:
        return 0
    meta = model._meta
    columns = [meta.get_field(name) for name in fields]
    key_field = meta.get_field(key)
    names = [key, *(f.attname for f in columns)]
    values = [[row[name] for name in names] for row in rows]
    assignments = ", ".join(f'"{f.column}" = v."{f.column}"::{f.db_type(connection)}' for f in columns)
    column_names = ", ".join(f'"{f.column}"' for f in [key_field, *columns])
    with connection.cursor() as cursor:
        rows_sql = _values_sql(cursor.cursor, values, [None, *(_adapter(f) for f in columns)])
        cursor.execute(f'UPDATE "{meta.db_table}" AS t SET {assignments} FROM (VALUES {rows_sql}) AS v({column_names}) '
                       f'WHERE t."{key_field.column}" = v."{key_field.column}"::{key_field.db_type(connection)}')
        return cursor.rowcount


def unseen_key(value: int) -> models.expressions.RawSQL:
    """`value` as a one-row subquery, `(SELECT %s)`, for `.filter(customer_id=unseen_key(pk))`.

    PostgreSQL plans a filter on a constant with that constant's own statistics. A customer who owns a
    large share of a table (the bench's heavy customer: half the payments, a quarter of the ledger) gets
    an estimate so high that a list page's "newest first, LIMIT 20" walks the table's id or date index
    backwards, filtering out every newer row of other customers (3.4 ms on the Balance page, 1.1 ms on
    Payments), instead of the customer's own (customer, -date) index (0.05 ms). Behind a subquery the
    planner estimates an average customer and takes the customer's index, whoever it is."""
    return models.expressions.RawSQL("(SELECT %s)", (int(value),), output_field=models.BigIntegerField())
