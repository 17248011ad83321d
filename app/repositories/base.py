"""What every repository shares: upserts (INSERT … ON CONFLICT, on both databases), compiled
once and reused, and the small SQL building blocks they are made of."""

import functools
import threading
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, fields, is_dataclass
from datetime import datetime
from operator import attrgetter, itemgetter
from typing import Any, cast

from sqlalchemy import (
    ClauseElement,
    Executable,
    FromClause,
    Row,
    Table,
    bindparam,
    text,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session
from sqlalchemy.sql.compiler import SQLCompiler

INSERTS: dict[str, Callable[[Table], Any]] = {
    "postgresql": postgresql.insert,
    "sqlite": sqlite.insert,
}
# Rows per multi-row statement: well under both databases' limits on bind parameters.
ROWS_PER_STATEMENT = 200

_NAMED_PARAMETERS: dict[str, Any] = {
    "postgresql": postgresql.dialect(paramstyle="named"),  # type: ignore[no-untyped-call]
    "sqlite": sqlite.dialect(paramstyle="named"),
}
_compiled: dict[tuple[Hashable, str], Executable] = {}
_compiled_lock = threading.Lock()


def upsert_insert(session: Session, table: FromClause) -> Any:
    """`INSERT` with `on_conflict_do_nothing/do_update` for the session's database."""
    return _insert_for(session.get_bind().dialect.name)(cast(Table, table))


def _insert_for(dialect: str) -> Callable[[Table], Any]:
    try:
        return INSERTS[dialect]
    except KeyError:
        raise NotImplementedError(f"upserts are not written for {dialect}") from None


def precompiled(
    session: Session, key: Hashable, build: Callable[[Callable[[Table], Any]], ClauseElement]
) -> Executable:
    """A statement built and compiled once per database kind, then reused.

    SQLAlchemy caches the compiled form of most statements, but not of the dialects'
    INSERT … ON CONFLICT (they have no cache key), and compiling one costs more than running
    it. So each is built once (by `build`, given the dialect's insert), compiled to SQL with
    named parameters, and kept as a text statement that SQLAlchemy does cache, with the
    parameters' types (so timestamps and JSON are converted as usual). `build` must use
    explicit `bindparam`s (or `excluded.<column>`) for every value that changes per call.
    """
    dialect = session.get_bind().dialect.name
    cached = _compiled.get((key, dialect))
    if cached is not None:
        return cached
    compiled = cast(
        SQLCompiler, build(_insert_for(dialect)).compile(dialect=_NAMED_PARAMETERS[dialect])
    )
    defaulted = [*compiled.insert_prefetch, *compiled.update_prefetch]
    if defaulted:
        # Their Python-side defaults would be computed once, here, and frozen.
        names = ", ".join(sorted({getattr(column, "key", str(column)) for column in defaulted}))
        raise ValueError(f"{key}: give a value for {names}; defaults are not precompiled")
    # Under the names the SQL uses (anonymous ones, like a literal 0, are named at compile).
    binds = {
        name: bindparam(name, value=bound.value, type_=bound.type)
        for bound, name in compiled.bind_names.items()
    }
    # PostgreSQL casts (`:param::JSONB`) would read as parameter names to text(): escape them.
    sql = str(compiled).replace("::", r"\:\:")
    statement: Executable = text(sql).bindparams(*binds.values())
    if compiled.effective_returning:
        # Typed results: timestamps come back as datetimes on SQLite too.
        statement = text(sql).bindparams(*binds.values()).columns(*compiled.effective_returning)
    with _compiled_lock:
        return _compiled.setdefault((key, dialect), statement)


def rows_upsert(
    session: Session,
    *,
    key: str,
    table: FromClause,
    rows: Sequence[Any],
    finish: Callable[[Any], ClauseElement],
    same: Mapping[str, Any] | None = None,
) -> list[Row[Any]]:
    """INSERT many rows at once (ROWS_PER_STATEMENT per statement), finished by `finish`
    (its ON CONFLICT and RETURNING clauses, if any); the rows it returns.

    The rows are dataclasses whose fields are named as columns, or mappings all with the
    same keys; `same` gives further columns, alike for every row.
    """
    returned: list[Row[Any]] = []
    if not rows:
        return returned
    columns, values_of = _columns_of(rows[0])
    same_values: tuple[Any, ...] = ()
    if same:
        columns, same_values = (*columns, *same), tuple(same.values())
    connection = session.connection()  # Core, not the ORM's execute: nothing here is ORM
    for start in range(0, len(rows), ROWS_PER_STATEMENT):
        chunk = rows[start : start + ROWS_PER_STATEMENT]
        count = len(chunk)
        build = functools.partial(
            _multi_row_insert, table=table, columns=columns, count=count, finish=finish
        )
        statement = precompiled(session, (key, columns, count), build)
        values = [value for row in chunk for value in (*values_of(row), *same_values)]
        parameters = dict(zip(_parameter_names(columns, count), values, strict=True))
        result = connection.execute(statement, parameters)
        if result.returns_rows:
            returned.extend(result.all())
    return returned


def _multi_row_insert(
    insert: Callable[[Table], Any],
    *,
    table: FromClause,
    columns: tuple[str, ...],
    count: int,
    finish: Callable[[Any], ClauseElement],
) -> ClauseElement:
    names = iter(_parameter_names(columns, count))  # row after row, as rows_upsert binds them
    placeholders = [
        {column: bindparam(next(names), type_=table.c[column].type) for column in columns}
        for _ in range(count)
    ]
    return finish(insert(cast(Table, table)).values(placeholders))


@functools.cache
def _parameter_names(columns: tuple[str, ...], count: int) -> tuple[str, ...]:
    """The parameters of a multi-row INSERT, row after row: `r<row>_<column>`."""
    return tuple(f"r{i}_{column}" for i in range(count) for column in columns)


def _columns_of(row: Any) -> tuple[tuple[str, ...], Callable[[Any], tuple[Any, ...]]]:
    """The columns a row fills, and how to read its values in that order."""
    if is_dataclass(row):
        row_type: Any = type(row)  # Any: mypy does not see that a class is hashable
        return _dataclass_columns(row_type)
    columns = tuple(row)
    return columns, _values_getter(itemgetter, columns)


@functools.cache
def _dataclass_columns(
    row_type: Any,
) -> tuple[tuple[str, ...], Callable[[Any], tuple[Any, ...]]]:
    columns = tuple(field.name for field in fields(row_type))
    return columns, _values_getter(attrgetter, columns)


def _values_getter(
    getter: Callable[..., Callable[[Any], Any]], names: tuple[str, ...]
) -> Callable[[Any], tuple[Any, ...]]:
    if len(names) == 1:  # itemgetter/attrgetter of one name return the value, not a tuple
        one = getter(names[0])
        return lambda row: (one(row),)
    return getter(*names)


@dataclass(frozen=True)
class Position:
    """Where a row sits in a list ordered by (time, id): what keyset pagination starts from."""

    at: datetime
    id: int
