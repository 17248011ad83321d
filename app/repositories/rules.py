"""Merge rules: of two rows with the same key, which one stands.

Each rule is written once and read two ways: `wins(new, current)` merges the rows of one
webhook delivery in Python (the intake batch), and `sql_wins(stored, incoming)` is the same
comparison in SQL, the ON CONFLICT condition of the repositories' upserts. So a delivery
merged first and written once ends where its webhook events written one by one end.

A rule orders rows by a key of columns (`Ascending`, `NoneFirst`, `NoneLast`), compared
left to right; the winner brings the key's columns and the columns it `carries`.
"""

from dataclasses import dataclass, replace
from typing import Any, Protocol

from sqlalchemy import ColumnElement, case, false
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.visitors import InternalTraversal
from sqlalchemy.types import String


class Columns(Protocol):
    """The table's columns (`stored`) or the INSERT's `excluded` (`incoming`), by name."""

    def __getitem__(self, name: str, /) -> Any: ...


class OrderBy(Protocol):
    """One column of a rule's ordering key."""

    @property
    def column(self) -> str: ...

    def key(self, value: Any) -> Any:
        """The value as Python compares it for this rule."""

    def sql_greater(
        self, incoming: ColumnElement[Any], stored: ColumnElement[Any]
    ) -> ColumnElement[bool]:
        """Whether the incoming value comes after the stored one."""

    def sql_equal(
        self, incoming: ColumnElement[Any], stored: ColumnElement[Any]
    ) -> ColumnElement[bool]:
        """Whether the two values tie."""


@dataclass(frozen=True)
class Ascending:
    """A column never NULL: the greater value comes after."""

    column: str

    def key(self, value: Any) -> Any:
        return value

    def sql_greater(
        self, incoming: ColumnElement[Any], stored: ColumnElement[Any]
    ) -> ColumnElement[bool]:
        return _python_order(incoming) > _python_order(stored)

    def sql_equal(
        self, incoming: ColumnElement[Any], stored: ColumnElement[Any]
    ) -> ColumnElement[bool]:
        return incoming == stored


@dataclass(frozen=True)
class NoneFirst:
    """NULL comes before any value: a clock not started yet."""

    column: str

    def key(self, value: Any) -> Any:
        return (value is not None, value)

    def sql_greater(
        self, incoming: ColumnElement[Any], stored: ColumnElement[Any]
    ) -> ColumnElement[bool]:
        later = _python_order(incoming) > _python_order(stored)
        return incoming.is_not(None) & (stored.is_(None) | later)

    def sql_equal(
        self, incoming: ColumnElement[Any], stored: ColumnElement[Any]
    ) -> ColumnElement[bool]:
        return incoming.is_not_distinct_from(stored)


@dataclass(frozen=True)
class NoneLast:
    """NULL comes after any value (of the same instant, an unreact wins over a react)."""

    column: str

    def key(self, value: Any) -> Any:
        return (value is None, value)

    def sql_greater(
        self, incoming: ColumnElement[Any], stored: ColumnElement[Any]
    ) -> ColumnElement[bool]:
        # Two values: a plain comparison. A NULL on either side makes that NULL (not true).
        greater = _python_order(incoming) > _python_order(stored)
        return (incoming.is_(None) & stored.is_not(None)) | greater

    def sql_equal(
        self, incoming: ColumnElement[Any], stored: ColumnElement[Any]
    ) -> ColumnElement[bool]:
        return incoming.is_not_distinct_from(stored)


@dataclass(frozen=True)
class Latest:
    """The row with the greater key wins and brings the key and `carries` along; with an
    equal key the current row stays (so a duplicate changes nothing)."""

    order: tuple[OrderBy, ...]
    carries: tuple[str, ...] = ()

    @property
    def columns(self) -> tuple[str, ...]:
        """The columns this rule decides."""
        return (*(by.column for by in self.order), *self.carries)

    def wins(self, new: Any, current: Any) -> bool:
        return self._key(new) > self._key(current)

    def merge(self, current: Any, new: Any) -> Any:
        """`current` with the winner's columns: what the upsert of both leaves stored."""
        if not self.wins(new, current):
            return current
        return replace(current, **{column: getattr(new, column) for column in self.columns})

    def _key(self, row: Any) -> tuple[Any, ...]:
        return tuple(by.key(getattr(row, by.column)) for by in self.order)

    def sql_wins(self, stored: Columns, incoming: Columns) -> ColumnElement[bool]:
        """`wins(incoming, stored)` in SQL: `a > a' OR (a = a' AND (b > b' OR ...))`."""
        condition: ColumnElement[bool] | None = None
        for by in reversed(self.order):
            new, old = incoming[by.column], stored[by.column]
            greater = by.sql_greater(new, old)
            condition = (
                greater if condition is None else greater | (by.sql_equal(new, old) & condition)
            )
        assert condition is not None, "a rule orders by at least one column"
        return condition

    def sql_values(self, incoming: Columns) -> dict[str, Any]:
        """The SET of an upsert whose WHERE is `sql_wins`: the winner's columns."""
        return {column: incoming[column] for column in self.columns}

    def sql_merged(self, stored: Columns, incoming: Columns) -> dict[str, Any]:
        """The SET of an upsert without WHERE: each column the winner's."""
        wins = self.sql_wins(stored, incoming)
        return {
            column: case((wins, incoming[column]), else_=stored[column]) for column in self.columns
        }


@dataclass(frozen=True)
class FirstStands:
    """The row stored first stays: the same message delivered again changes nothing."""

    def wins(self, new: Any, current: Any) -> bool:
        return False

    def merge(self, current: Any, new: Any) -> Any:
        return current

    def sql_wins(self, stored: Columns, incoming: Columns) -> ColumnElement[bool]:
        return false()


@dataclass(frozen=True)
class EachOnItsOwn:
    """Rules over separate columns of one row, each applied by itself (a row's clocks)."""

    rules: tuple[Latest, ...]

    def merge(self, current: Any, new: Any) -> Any:
        for rule in self.rules:
            current = rule.merge(current, new)
        return current

    def sql_merged(self, stored: Columns, incoming: Columns) -> dict[str, Any]:
        return {
            column: value
            for rule in self.rules
            for column, value in rule.sql_merged(stored, incoming).items()
        }


# A message delivered again (Meta retries) changes nothing.
FIRST_MESSAGE_STANDS = FirstStands()
# An unsend makes a tombstone; of two, the later stands.
LATER_UNSEND = Latest(order=(NoneFirst("deleted_at"),))
# Edits carry the full new text; `num_edit` orders them.
HIGHER_EDIT = Latest(order=(Ascending("edit_count"),), carries=("text", "edited_at"))
# One reaction per (mid, user): the latest event; of the same instant an unreact, else the
# greater name (any deterministic choice makes every order of arrival end the same).
LATEST_REACTION = Latest(order=(Ascending("reacted_at"), NoneLast("reaction")), carries=("emoji",))
# A conversation's clocks only move forward; the read mid and the referral travel with theirs.
CONVERSATION_CLOCKS = EachOnItsOwn(
    rules=(
        Latest(order=(NoneFirst("last_message_at"),)),
        Latest(order=(NoneFirst("last_inbound_at"),)),
        Latest(order=(NoneFirst("customer_read_at"),), carries=("customer_read_mid",)),
        Latest(order=(NoneFirst("last_referral_at"),), carries=("last_referral",)),
    )
)


class _PythonOrder(ColumnElement[Any]):
    """A value compared as Python compares it. Text: by code point, so PostgreSQL compares
    under the "C" collation (the database's own may sort by language, which Python's merge
    could not know); SQLite compares bytes (the same order) already."""

    inherit_cache = True
    _traverse_internals = [("value", InternalTraversal.dp_clauseelement)]  # noqa: RUF012

    def __init__(self, value: ColumnElement[Any]) -> None:
        self.value = value
        self.type = value.type


def _python_order(value: ColumnElement[Any]) -> ColumnElement[Any]:
    return _PythonOrder(value) if isinstance(value.type, String) else value


@compiles(_PythonOrder)
def _compile_python_order(element: _PythonOrder, compiler: SQLCompiler, **kw: Any) -> str:
    return compiler.process(element.value, **kw)


@compiles(_PythonOrder, "postgresql")
def _compile_python_order_postgresql(
    element: _PythonOrder, compiler: SQLCompiler, **kw: Any
) -> str:
    return f'{compiler.process(element.value, **kw)} COLLATE "C"'
