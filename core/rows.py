"""Hot-path statements built as strings: many rows' own values in one UPDATE, counters,
conditional UPDATEs that say which rows they took, many rows inserted, rows read, keys read
and locked.

Django's ``bulk_update`` builds a ``CASE WHEN pk = … THEN …`` per field and row and
compiles it in Python: 1.4 ms of CPU for one row and 0.74 ms per row for a hundred,
where the dispatcher moves up to a thousand operations a pass. ``UPDATE … FROM (VALUES
…)`` is one statement built as a string; PostgreSQL and SQLite (3.33+) both read it.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from django.db import connections, router
from django.db.models import Field, Model


def update_rows(objects: Sequence[Model], fields: Sequence[str]) -> int:
    """Save ``fields`` of each of ``objects`` (one model, saved rows) in one UPDATE; the
    number of rows updated."""
    if not objects:
        return 0
    model = type(objects[0])
    meta = model._meta
    connection = connections[router.db_for_write(model)]
    quote = connection.ops.quote_name
    by_attname = _by_attname(model)
    concrete = [by_attname[str(meta.pk.attname)], *(by_attname[name] for name in fields)]
    typed = connection.vendor == "postgresql"  # a VALUES column of NULLs needs its type there
    placeholder = (
        "("
        + ", ".join(
            f"CAST(%s AS {field.cast_db_type(connection)})" if typed else "%s" for field in concrete
        )
        + ")"
    )
    params: list[Any] = []
    for obj in objects:
        for field in concrete:
            params.append(field.get_db_prep_save(getattr(obj, field.attname), connection))
    table = quote(meta.db_table)
    assignments = ", ".join(
        f"{quote(str(field.column))} = v.column{position}"
        for position, field in enumerate(concrete[1:], start=2)
    )
    # Only quoted names from the model's metadata are spliced in; every value is a parameter.
    sql = (
        f"UPDATE {table} SET {assignments} "  # noqa: S608
        f"FROM (VALUES {', '.join([placeholder] * len(objects))}) AS v "
        f"WHERE {table}.{quote(str(concrete[0].column))} = v.column1"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount


def add_to(
    model: type[Model],
    where: Mapping[str, Any],
    add: Mapping[str, int],
    values: Mapping[str, Any] | None = None,
) -> int:
    """``UPDATE … SET counter = counter + n [, field = value] WHERE field = value [AND
    field IN (…)]``: the counters every capture moves, without the ORM compiling an
    F() expression (0.4 ms of CPU per UPDATE, against 0.1 ms for this). ``where`` values
    that are lists or tuples match any of theirs. The number of rows updated."""
    if any(isinstance(value, list | tuple) and not value for value in where.values()):
        return 0  # IN () matches nothing (and is not SQL)
    connection, sql, params = _update(model, where, add, values or {})
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount


def update_where(model: type[Model], where: Mapping[str, Any], values: Mapping[str, Any]) -> int:
    """``UPDATE … SET field = value WHERE …``: ``add_to`` without counters. The number of
    rows updated."""
    return add_to(model, where, {}, values)


def update_returning(
    model: type[Model], where: Mapping[str, Any], values: Mapping[str, Any], returning: str
) -> list[Any]:
    """``UPDATE … SET field = value WHERE … RETURNING returning``: which rows a conditional
    UPDATE took (for example the captures still waiting, of a batch), in one statement."""
    if any(isinstance(value, list | tuple) and not value for value in where.values()):
        return []
    connection, sql, params = _update(model, where, {}, values)
    column = connection.ops.quote_name(str(_by_attname(model)[returning].column))
    with connection.cursor() as cursor:
        cursor.execute(f"{sql} RETURNING {column}", params)
        return [row[0] for row in cursor.fetchall()]


def _update(
    model: type[Model],
    where: Mapping[str, Any],
    add: Mapping[str, int],
    values: Mapping[str, Any],
) -> tuple[Any, str, list[Any]]:
    """The connection, SQL and parameters of ``add_to`` and ``update_returning``."""
    connection = connections[router.db_for_write(model)]
    fields = _by_attname(model)

    def column(name: str) -> str:
        return connection.ops.quote_name(str(fields[name].column))

    assignments, params = [], []
    for name, count in add.items():
        assignments.append(f"{column(name)} = {column(name)} + %s")
        params.append(count)
    for name, value in values.items():
        assignments.append(f"{column(name)} = %s")
        params.append(fields[name].get_db_prep_save(value, connection))
    conditions, where_params = _where(model, connection, where)
    sql = (  # names from the model's metadata, quoted; every value is a parameter
        f"UPDATE {connection.ops.quote_name(model._meta.db_table)} "  # noqa: S608
        f"SET {', '.join(assignments)} WHERE {conditions}"
    )
    return connection, sql, [*params, *where_params]


M = TypeVar("M", bound=Model)


def insert_rows(objects: Sequence[M]) -> list[M]:
    """INSERT ``objects`` (one model, new rows) in one statement built as a string, each
    given its primary key: ``bulk_create`` without the compile (its SQL compiler was a
    seventh of a staging task's CPU). Field defaults apply as in ``Model.save``."""
    if not objects:
        return []
    model = type(objects[0])
    meta = model._meta
    connection = connections[router.db_for_write(model)]
    quote = connection.ops.quote_name
    fields = [field for field in meta.concrete_fields if field is not meta.pk]
    params: list[Any] = []
    for obj in objects:
        for field in fields:
            params.append(field.get_db_prep_save(field.pre_save(obj, True), connection))
    row = "(" + ", ".join(["%s"] * len(fields)) + ")"
    pk = quote(str(meta.pk.column))
    sql = (  # names from the model's metadata, quoted; every value is a parameter
        f"INSERT INTO {quote(meta.db_table)} "  # noqa: S608
        f"({', '.join(quote(str(field.column)) for field in fields)}) "
        f"VALUES {', '.join([row] * len(objects))} RETURNING {pk}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        keys = [found[0] for found in cursor.fetchall()]
    for obj, key in zip(objects, keys, strict=True):
        obj.pk = key
        obj._state.adding = False
        obj._state.db = connection.alias
    return list(objects)


def load_one(model: type[M], where: Mapping[str, Any]) -> M | None:
    """The row ``where`` picks (one, or the first by primary key), as a model instance, or
    None. A hot-path read without the ORM's compile (related rows: load them the same way
    and assign them)."""
    found = _load(model, where, "LIMIT 1")
    return found[0] if found else None


def load_all(model: type[M], where: Mapping[str, Any]) -> list[M]:
    """The rows ``where`` picks, by primary key, as model instances (``load_one``'s read
    for a batch)."""
    return _load(model, where, "")


def row_keys(model: type[Model], where: Mapping[str, Any], *, lock: bool = False) -> list[Any]:
    """``SELECT pk … [FOR UPDATE]``: the keys of the rows ``where`` picks, by key; with
    ``lock``, locked until the transaction ends (SQLite locks the whole database on write
    instead)."""
    connection = connections[router.db_for_write(model) if lock else router.db_for_read(model)]
    conditions, params = _where(model, connection, where)
    table = connection.ops.quote_name(model._meta.db_table)
    pk = connection.ops.quote_name(str(model._meta.pk.column))
    for_update = " FOR UPDATE" if lock and connection.features.has_select_for_update else ""
    sql = f"SELECT {pk} FROM {table} WHERE {conditions} ORDER BY {pk}{for_update}"  # noqa: S608
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return [row[0] for row in cursor.fetchall()]


def _load(model: type[M], where: Mapping[str, Any], limit: str) -> list[M]:
    """Read with a cursor and build the instances as the ORM does (its column converters,
    then ``Model.from_db``), without compiling a query or a raw queryset's column lookup:
    about a third of the CPU of ``RawQuerySet`` per row read."""
    connection = connections[router.db_for_read(model)]
    reader = _reader(model, connection.alias)
    conditions, params = _where(model, connection, where)
    with connection.cursor() as cursor:
        cursor.execute(f"{reader.select} WHERE {conditions} {reader.order} {limit}", params)
        rows = cursor.fetchall()
    objects = []
    for row in rows:
        values = list(row)
        for position, column, converters in reader.converters:
            for convert in converters:
                values[position] = convert(values[position], column, connection)
        objects.append(model.from_db(connection.alias, reader.attnames, values))
    return objects


@dataclass(frozen=True)
class _Reader:
    select: str  # SELECT <every concrete column> FROM <table>
    order: str
    attnames: list[str]
    converters: list[tuple[int, Any, list[Any]]]  # (position, column, converters)


@functools.cache
def _reader(model: type[Model], alias: str) -> _Reader:
    connection = connections[alias]
    quote = connection.ops.quote_name
    meta = model._meta
    fields = list(meta.concrete_fields)
    converters = []
    for position, field in enumerate(fields):
        column = field.get_col(meta.db_table)
        found = connection.ops.get_db_converters(column) + column.get_db_converters(connection)
        if found:
            converters.append((position, column, found))
    columns = ", ".join(quote(str(field.column)) for field in fields)
    return _Reader(
        select=f"SELECT {columns} FROM {quote(meta.db_table)}",  # noqa: S608
        order=f"ORDER BY {quote(str(meta.pk.column))}",
        attnames=[field.attname for field in fields],
        converters=converters,
    )


def _where(model: type[Model], connection: Any, where: Mapping[str, Any]) -> tuple[str, list]:
    """``field = value AND field IN (…)`` for ``where`` (lists and tuples: IN; None: IS
    NULL), and its parameters."""
    fields = _by_attname(model)
    conditions: list[str] = []
    params: list[Any] = []
    for name, value in where.items():
        field = fields[name]
        column = connection.ops.quote_name(str(field.column))
        if value is None:
            conditions.append(f"{column} IS NULL")
        elif isinstance(value, list | tuple) and not value:
            conditions.append("1 = 0")  # IN () is not SQL, and matches nothing
        elif isinstance(value, list | tuple):
            conditions.append(f"{column} IN ({', '.join(['%s'] * len(value))})")
            params.extend(field.get_db_prep_value(item, connection) for item in value)
        else:
            conditions.append(f"{column} = %s")
            params.append(field.get_db_prep_value(value, connection))
    return " AND ".join(conditions), params


@functools.cache
def _by_attname(model: type[Model]) -> dict[str, Field[Any, Any]]:
    return {field.attname: field for field in model._meta.concrete_fields}
