"""Hot-path statements built as strings: many rows' own values in one UPDATE, counters,
conditional UPDATEs that say which rows they took, many rows inserted, rows read, keys read
and locked.

Django's ``bulk_update`` builds a ``CASE WHEN pk = … THEN …`` per field and row and
compiles it in Python: 1.4 ms of CPU for one row and 0.74 ms per row for a hundred,
where the dispatcher moves up to a thousand operations a pass. ``UPDATE … FROM (VALUES
…)`` is one statement built as a string; PostgreSQL and SQLite (3.33+) both read it.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from typing import Any, TypeVar

from django.db import connections, router, transaction
from django.db.models import Field, ForeignKey, Model


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
    table = quote(meta.db_table)
    assignments = ", ".join(
        f"{quote(str(field.column))} = v.column{position}"
        for position, field in enumerate(concrete[1:], start=2)
    )
    updated = 0
    with _together(connection, objects, len(concrete)) as batches:
        for batch in batches:
            params = [
                field.get_db_prep_save(getattr(obj, field.attname), connection)
                for obj in batch
                for field in concrete
            ]
            # Only quoted names from the model's metadata are spliced in; every value is a
            # parameter.
            sql = (
                f"UPDATE {table} SET {assignments} "  # noqa: S608
                f"FROM (VALUES {', '.join([placeholder] * len(batch))}) AS v "
                f"WHERE {table}.{quote(str(concrete[0].column))} = v.column1"
            )
            with connection.cursor() as cursor:
                cursor.execute(sql, params)
                updated += cursor.rowcount
    return updated


POSTGRESQL_MAX_PARAMS = 65_535  # the protocol's limit on one statement's parameters


def _max_params(connection: Any) -> int:
    return int(connection.features.max_query_params or POSTGRESQL_MAX_PARAMS)


@contextmanager
def _together(connection: Any, objects: Sequence[M], per_row: int) -> Iterator[list[list[M]]]:
    """``objects`` in batches of as many rows as one statement's parameters allow (a start
    of thousands of operations is more than 65,535 values); several batches run in one
    transaction, so the rows go in or change all together or not at all."""
    size = max(1, _max_params(connection) // per_row)
    batches = [list(objects[start : start + size]) for start in range(0, len(objects), size)]
    if len(batches) == 1:
        yield batches
        return
    with transaction.atomic(using=connection.alias):
        yield batches


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
    if _matches_nothing(where):
        return 0
    connection, sql, params = _update(model, where, add, values or {})
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount


@dataclass(frozen=True)
class Change:
    """One ``add_to``: counters to add (and fields to set) on the rows ``where`` picks."""

    model: type[Model]
    where: Mapping[str, Any]
    add: Mapping[str, int]
    values: Mapping[str, Any] = dataclasses.field(default_factory=dict)


def add_together(first: Change, *then: Change, returning: str = "pk") -> list[Any]:
    """``first``, and ``then`` only if ``first`` changed a row, all or nothing: the
    ``returning`` field (the primary key unless named) of each row ``first`` changed, as
    the change left it.

    On PostgreSQL one statement (``WITH first AS (UPDATE … RETURNING …) UPDATE … AND
    EXISTS (SELECT 1 FROM first)``): an operation's counter and its channel rows move in
    one round trip instead of four (BEGIN, two UPDATEs, COMMIT), and a flag read under the
    row lock comes with it. ``first`` is run before the others (its EXISTS is an
    uncorrelated sub-plan), so its row is locked first, as when the statements run one by
    one. Elsewhere (SQLite) they do, in a transaction.
    """
    then = tuple(change for change in then if not _matches_nothing(change.where))
    connection = connections[router.db_for_write(first.model)]
    if connection.vendor != "postgresql" or not then:
        with transaction.atomic(using=connection.alias) if then else nullcontext():
            changed = _update_returning(
                first.model, first.where, first.add, first.values, returning
            )
            for change in then if changed else ():
                add_to(change.model, change.where, change.add, change.values)
        return changed
    if _matches_nothing(first.where):
        return []
    _, sql, params = _update(first.model, first.where, first.add, first.values)
    column = _column(first.model, connection, returning)
    parts = [f"first AS ({sql} RETURNING {column})"]
    for position, change in enumerate(then):
        _, then_sql, then_params = _update(change.model, change.where, change.add, change.values)
        parts.append(f"then{position} AS ({then_sql} AND EXISTS (SELECT 1 FROM first))")  # noqa: S608
        params.extend(then_params)
    with connection.cursor() as cursor:
        cursor.execute(f"WITH {', '.join(parts)} SELECT {column} FROM first", params)  # noqa: S608
        return [row[0] for row in cursor.fetchall()]


def _matches_nothing(where: Mapping[str, Any]) -> bool:
    """An empty list matches no row (and ``IN ()`` is not SQL)."""
    return any(isinstance(value, list | tuple) and not value for value in where.values())


def update_where(model: type[Model], where: Mapping[str, Any], values: Mapping[str, Any]) -> int:
    """``UPDATE … SET field = value WHERE …``: ``add_to`` without counters. The number of
    rows updated."""
    return add_to(model, where, {}, values)


def update_returning(
    model: type[Model], where: Mapping[str, Any], values: Mapping[str, Any], returning: str
) -> list[Any]:
    """``UPDATE … SET field = value WHERE … RETURNING returning``: which rows a conditional
    UPDATE took (for example the captures still waiting, of a batch), in one statement."""
    return _update_returning(model, where, {}, values, returning)


def _update_returning(
    model: type[Model],
    where: Mapping[str, Any],
    add: Mapping[str, int],
    values: Mapping[str, Any],
    returning: str,
) -> list[Any]:
    if _matches_nothing(where):
        return []
    connection, sql, params = _update(model, where, add, values)
    with connection.cursor() as cursor:
        cursor.execute(f"{sql} RETURNING {_column(model, connection, returning)}", params)
        return [row[0] for row in cursor.fetchall()]


def _column(model: type[Model], connection: Any, name: str) -> str:
    """The quoted column of field ``name`` (``pk``: the primary key)."""
    column = model._meta.pk.column if name == "pk" else _by_attname(model)[name].column
    return str(connection.ops.quote_name(str(column)))


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
    connection = connections[router.db_for_write(type(objects[0]))]
    per_row = len(_insert_fields(type(objects[0])))
    with _together(connection, objects, per_row) as batches:
        for batch in batches:
            _, columns, rows, params = _insert_parts(batch, typed=False)
            sql = f"{columns} VALUES {rows} RETURNING {_pk(batch, connection)}"
            _inserted(batch, connection, sql, params)
    return list(objects)


def insert_rows_locking(
    objects: Sequence[M], model: type[Model], where: Mapping[str, Any]
) -> list[M]:
    """``insert_rows`` under the row lock of the (one) ``model`` row ``where`` picks, and
    only if there is one: [] and nothing inserted otherwise. On PostgreSQL one statement
    (``WITH locked AS (SELECT … FOR UPDATE) INSERT … SELECT … WHERE EXISTS``) instead of
    four (BEGIN, the lock, the INSERT, COMMIT); elsewhere the lock and the insert in a
    transaction. Inside a transaction a failed INSERT (a key taken) is rolled back to a
    savepoint, so the caller can try again."""
    connection = connections[router.db_for_write(model)]
    if connection.vendor != "postgresql":
        with transaction.atomic(using=connection.alias):
            return insert_rows(objects) if row_keys(model, where, lock=True) else []
    _, columns, rows, params = _insert_parts(objects, typed=True)
    conditions, where_params = _where(model, connection, where)
    table = connection.ops.quote_name(model._meta.db_table)
    sql = (  # names from the models' metadata, quoted; every value is a parameter
        f"WITH locked AS (SELECT 1 FROM {table} WHERE {conditions} FOR UPDATE) "  # noqa: S608
        f"{columns} SELECT * FROM (VALUES {rows}) AS v WHERE EXISTS (SELECT 1 FROM locked) "
        f"RETURNING {_pk(objects, connection)}"
    )
    within: AbstractContextManager[Any] = (
        transaction.atomic(using=connection.alias) if connection.in_atomic_block else nullcontext()
    )
    with within:
        return _inserted(objects, connection, sql, [*where_params, *params])


def _insert_parts(objects: Sequence[Model], *, typed: bool) -> tuple[Any, str, str, list[Any]]:
    """The connection, ``INSERT INTO table (columns)``, the VALUES rows and their
    parameters; ``typed``: each value CAST to its column's type, as a VALUES list outside
    an INSERT's own needs."""
    model = type(objects[0])
    meta = model._meta
    connection = connections[router.db_for_write(model)]
    quote = connection.ops.quote_name
    fields = _insert_fields(model)
    params: list[Any] = []
    for obj in objects:
        for field in fields:
            params.append(field.get_db_prep_save(field.pre_save(obj, True), connection))
    placeholders = [
        f"CAST(%s AS {field.cast_db_type(connection)})" if typed else "%s" for field in fields
    ]
    row = "(" + ", ".join(placeholders) + ")"
    columns = (  # names from the model's metadata, quoted
        f"INSERT INTO {quote(meta.db_table)} "
        f"({', '.join(quote(str(field.column)) for field in fields)})"
    )
    return connection, columns, ", ".join([row] * len(objects)), params


def _insert_fields(model: type[Model]) -> list[Field[Any, Any]]:
    meta = model._meta
    return [field for field in meta.concrete_fields if field is not meta.pk]


def _pk(objects: Sequence[Model], connection: Any) -> str:
    return connection.ops.quote_name(str(type(objects[0])._meta.pk.column))


def _inserted(objects: Sequence[M], connection: Any, sql: str, params: list[Any]) -> list[M]:
    """Run an INSERT … RETURNING pk of ``objects``; the rows it made, given their keys."""
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        keys = [found[0] for found in cursor.fetchall()]
    if not keys:
        return []
    for obj, key in zip(objects, keys, strict=True):
        obj.pk = key
        obj._state.adding = False
        obj._state.db = connection.alias
    return list(objects)


def load_one(model: type[M], where: Mapping[str, Any], *, lock: bool = False) -> M | None:
    """The row ``where`` picks (one, or the first by primary key), as a model instance, or
    None. A hot-path read without the ORM's compile (related rows: ``load_one_with``, or
    load them the same way and assign them). ``lock``: read and locked until the
    transaction ends in one statement (``row_keys``' lock and the read in one)."""
    found = _load(model, where, "LIMIT 1", lock=lock)
    return found[0] if found else None


def load_all(model: type[M], where: Mapping[str, Any], *, lock: bool = False) -> list[M]:
    """The rows ``where`` picks, by primary key, as model instances (``load_one``'s read
    for a batch); ``lock``: locked until the transaction ends, in key order (so two
    batches lock their common rows in the same order)."""
    return _load(model, where, "", lock=lock)


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


def load_one_with(
    model: type[M], where: Mapping[str, Any], related: str, *, lock: bool = False
) -> M | None:
    """``load_one`` and the row its foreign key ``related`` points at, read in one query (a
    join) and set on it as ``select_related`` does; None when either is missing. An
    operation and its modem, read by every trigger: one round trip instead of two.
    ``lock``: ``FOR UPDATE`` of the ``model`` row only (the related row stays free)."""
    found = _load_with(model, where, related, "LIMIT 1", lock=lock)
    return found[0] if found else None


def load_all_with(model: type[M], where: Mapping[str, Any], related: str) -> list[M]:
    """``load_all`` with the rows their foreign key ``related`` points at (``load_one_with``
    for a batch); a row whose related row is missing is left out."""
    return _load_with(model, where, related, "")


def _load_with(
    model: type[M], where: Mapping[str, Any], related: str, limit: str, *, lock: bool = False
) -> list[M]:
    connection = connections[router.db_for_write(model) if lock else router.db_for_read(model)]
    reader = _reader(model, connection.alias)
    key = model._meta.get_field(related)
    if not isinstance(key, ForeignKey):
        raise TypeError(f"{model.__name__}.{related} is not a foreign key")
    target: type[Model] = key.related_model
    other = _reader(target, connection.alias)
    quote = connection.ops.quote_name
    conditions, params = _where(model, connection, where, table=reader.table)
    sql = (  # names from the models' metadata, quoted; every value is a parameter
        f"SELECT {reader.columns}, {other.columns} FROM {reader.table} "  # noqa: S608
        f"JOIN {other.table} ON {other.table}.{quote(str(key.target_field.column))} = "
        f"{reader.table}.{quote(str(key.column))} WHERE {conditions} "
        f"ORDER BY {reader.table}.{reader.pk} {limit}"
    )
    if lock and connection.features.has_select_for_update_of:
        sql += f" FOR UPDATE OF {reader.table}"
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    width = len(reader.attnames)
    found = []
    for row in rows:
        loaded = _build(model, reader, connection, row[:width])
        setattr(loaded, related, _build(target, other, connection, row[width:]))
        found.append(loaded)
    return found


def _load(model: type[M], where: Mapping[str, Any], limit: str, *, lock: bool = False) -> list[M]:
    """Read with a cursor and build the instances as the ORM does (its column converters,
    then ``Model.from_db``), without compiling a query or a raw queryset's column lookup:
    about a third of the CPU of ``RawQuerySet`` per row read."""
    connection = connections[router.db_for_write(model) if lock else router.db_for_read(model)]
    reader = _reader(model, connection.alias)
    conditions, params = _where(model, connection, where)
    for_update = " FOR UPDATE" if lock and connection.features.has_select_for_update else ""
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {reader.columns} FROM {reader.table} WHERE {conditions} "  # noqa: S608
            f"ORDER BY {reader.pk} {limit}{for_update}",
            params,
        )
        rows = cursor.fetchall()
    return [_build(model, reader, connection, row) for row in rows]


def _build(model: type[M], reader: _Reader, connection: Any, row: Sequence[Any]) -> M:
    """One instance from its columns, through the column converters, as the ORM builds it."""
    values = list(row)
    for position, column, converters in reader.converters:
        for convert in converters:
            values[position] = convert(values[position], column, connection)
    return model.from_db(connection.alias, reader.attnames, values)


@dataclass(frozen=True)
class _Reader:
    table: str  # quoted
    columns: str  # every concrete column, qualified with the table
    pk: str  # quoted
    attnames: list[str]
    converters: list[tuple[int, Any, list[Any]]]  # (position, column, converters)


@functools.cache
def _reader(model: type[Model], alias: str) -> _Reader:
    connection = connections[alias]
    quote = connection.ops.quote_name
    meta = model._meta
    fields = list(meta.concrete_fields)
    converters = []
    for position, concrete in enumerate(fields):
        column = concrete.get_col(meta.db_table)
        found = connection.ops.get_db_converters(column) + column.get_db_converters(connection)
        if found:
            converters.append((position, column, found))
    table = quote(meta.db_table)
    return _Reader(
        table=table,
        columns=", ".join(f"{table}.{quote(str(concrete.column))}" for concrete in fields),
        pk=quote(str(meta.pk.column)),
        attnames=[concrete.attname for concrete in fields],
        converters=converters,
    )


def _where(
    model: type[Model], connection: Any, where: Mapping[str, Any], table: str = ""
) -> tuple[str, list]:
    """``field = value AND field IN (…)`` for ``where`` (lists and tuples: IN; None: IS
    NULL), and its parameters; ``table``: the columns qualified with it (a join)."""
    fields = _by_attname(model)
    conditions: list[str] = []
    params: list[Any] = []
    for name, value in where.items():
        field = fields[name]
        column = connection.ops.quote_name(str(field.column))
        if table:
            column = f"{table}.{column}"
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
