"""Set-based SQL for batch jobs: one INSERT or UPDATE statement for many rows, through Django's cursor.

`insert_rows` fills omitted fields with the model's defaults (auto_now/auto_now_add with the same
`now`); `copy_rows` does the same through COPY (no ON CONFLICT, cheaper for many rows); `update_rows`
gives each row its own values. Neither sends signals nor calls `save()`: callers
(billing.bulk, notifications.bulk, orders' set-based renewal) write exactly what the single-row path
would, and tests pin their statement counts. JSON fields are adapted; values are quoted by psycopg2.
"""
import json

from django.db import connection, models
from django.utils import timezone

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


def _adapt(field: models.Field, value):
    if isinstance(field, models.JSONField) and value is not None:
        from psycopg2.extras import Json

        return Json(value, dumps=json.dumps)
    return value


def _row_values(model, fields: list[tuple[models.Field, object]], row: dict) -> list[tuple[models.Field, object]]:
    """(field, value) for each of `fields`, the model default where `row` leaves it out; a required one is refused."""
    values = []
    for model_field, default in fields:
        value = row.get(model_field.attname, default)
        if value is _MISSING:
            raise ValueError(f"{model.__name__}.{model_field.attname} is required")
        values.append((model_field, value))
    return values


def insert_rows(model, rows: list[dict], *, returning: str | tuple[str, ...] | None = "id", on_conflict: str = "") -> list:
    """INSERT many rows of `model` (dicts by attname; omitted fields take their model default) in one
    statement. Returns the `returning` column per inserted row, in the order given."""
    if not rows:
        return []
    now = timezone.now()
    fields = _field_defaults(model, now)
    raw = connection.cursor().cursor  # psycopg2's mogrify quotes each value exactly as execute() would
    template = "(" + ", ".join(["%s"] * len(fields)) + ")"
    values = [raw.mogrify(template, [_adapt(field, value) for field, value in _row_values(model, fields, row)]).decode()
              for row in rows]
    sql = (f'INSERT INTO "{model._meta.db_table}" ({", ".join(chr(34) + f.column + chr(34) for f, _d in fields)}) '
           f"VALUES {', '.join(values)} {on_conflict}")
    columns = (returning,) if isinstance(returning, str) else returning or ()
    if columns:
        sql += " RETURNING " + ", ".join(f'"{column}"' for column in columns)
    with connection.cursor() as cursor:
        cursor.execute(sql)
        if not columns:
            return []
        return [row[0] for row in cursor.fetchall()] if isinstance(returning, str) else cursor.fetchall()


_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _copy_value(field: models.Field, value) -> str:
    """One value in COPY's text format (as `execute` would quote it, minus the SQL)."""
    if value is None:
        return "\\N"
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(field, models.JSONField):
        value = json.dumps(value)
    elif hasattr(value, "isoformat"):
        value = value.isoformat()
    return str(value).translate(_COPY_ESCAPES)


def copy_rows(model, rows: list[dict], *, with_ids: bool = False) -> list[int]:
    """`insert_rows` without ON CONFLICT, through COPY: no per-row quoting with mogrify and a cheaper
    parse for PostgreSQL. Insert triggers (the ledger's balanced-legs check) still run. COPY returns
    nothing: `with_ids` takes the primary keys from the table's sequence first (one statement) and
    returns them in the order given. (Django's query log does not see the COPY itself.)"""
    if not rows:
        return []
    import io

    fields = _field_defaults(model, timezone.now())
    ids = []
    if with_ids:
        pk = model._meta.pk
        with connection.cursor() as cursor:
            cursor.execute("SELECT nextval(pg_get_serial_sequence(%s, %s)) FROM generate_series(1, %s)",
                           [model._meta.db_table, pk.column, len(rows)])
            ids = [row[0] for row in cursor.fetchall()]
        rows = [{**row, pk.attname: pk_value} for row, pk_value in zip(rows, ids)]
        fields = [(pk, _MISSING), *fields]
    lines = ["\t".join(_copy_value(field, value) for field, value in _row_values(model, fields, row)) for row in rows]
    columns = ", ".join(f'"{f.column}"' for f, _d in fields)
    with connection.cursor() as cursor:
        cursor.cursor.copy_expert(f'COPY "{model._meta.db_table}" ({columns}) FROM STDIN',
                                  io.StringIO("\n".join(lines) + "\n"))
    return ids


def update_rows(model, rows: list[dict], fields: list[str], *, key: str = "id") -> int:
    """UPDATE many rows of `model`, each to its own values, in one statement (`rows` are dicts with
    `key` and every name in `fields`)."""
    if not rows:
        return 0
    meta = model._meta
    columns = [meta.get_field(name) for name in fields]
    key_field = meta.get_field(key)
    raw = connection.cursor().cursor
    template = "(" + ", ".join(["%s"] * (len(columns) + 1)) + ")"
    values = ", ".join(raw.mogrify(template, [row[key]] + [_adapt(f, row[f.attname]) for f in columns]).decode()
                       for row in rows)
    assignments = ", ".join(f'"{f.column}" = v."{f.column}"::{f.db_type(connection)}' for f in columns)
    names = ", ".join(f'"{f.column}"' for f in [key_field, *columns])
    sql = (f'UPDATE "{meta.db_table}" AS t SET {assignments} FROM (VALUES {values}) AS v({names}) '
           f'WHERE t."{key_field.column}" = v."{key_field.column}"::{key_field.db_type(connection)}')
    with connection.cursor() as cursor:
        cursor.execute(sql)
        return cursor.rowcount
