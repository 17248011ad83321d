"""What every repository shares: the dialect's INSERT, which has ON CONFLICT on both databases."""

from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import ColumnElement, CursorResult, Result, Table, case
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session


def upsert_insert(session: Session, table: Table) -> Any:
    """`INSERT` with `on_conflict_do_nothing/do_update` for the session's database."""
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        return postgresql.insert(table)
    if dialect == "sqlite":
        return sqlite.insert(table)
    raise NotImplementedError(f"upserts are not written for {dialect}")


def later_of(current: ColumnElement[Any], incoming: ColumnElement[Any]) -> ColumnElement[Any]:
    """The later of two nullable timestamps: a column never moves backwards."""
    return case(
        (incoming.is_(None), current),
        (current.is_(None), incoming),
        (incoming > current, incoming),
        else_=current,
    )


@dataclass(frozen=True)
class Position:
    """Where a row sits in a list ordered by (time, id): what keyset pagination starts from."""

    at: datetime
    id: int


def changed_rows(result: Result[Any]) -> int:
    """How many rows an INSERT/UPDATE changed: 0 for an upsert that found its row up to date
    (a duplicate event)."""
    return cast("CursorResult[Any]", result).rowcount
