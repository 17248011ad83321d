"""Readiness: is the database reachable, and is its schema at the newest migration?"""

from functools import lru_cache
from pathlib import Path
from typing import Any

from alembic.script import ScriptDirectory
from sqlalchemy import Engine, text
from sqlalchemy import exc as sa_exc

MIGRATIONS_DIR = Path(__file__).resolve().parents[2] / "alembic"


@lru_cache
def migration_heads() -> frozenset[str]:
    """The head revision(s) of the migrations shipped with this code."""
    return frozenset(ScriptDirectory(str(MIGRATIONS_DIR)).get_heads())


def readiness(engine: Engine) -> dict[str, Any]:
    """A report of the checks; `ready` is True when all pass."""
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
            try:
                revisions = set(
                    connection.execute(text("SELECT version_num FROM alembic_version")).scalars()
                )
            except sa_exc.DBAPIError:
                revisions = set()
    except (sa_exc.DBAPIError, sa_exc.TimeoutError) as exc:
        cause = getattr(exc, "orig", None) or exc
        return {
            "ready": False,
            "database": f"unreachable ({type(cause).__name__})",
            "schema": "unknown",
        }
    heads = migration_heads()
    if revisions == set(heads):
        schema = "at head"
    elif not revisions:
        schema = "not migrated: run `fab migrate`"
    else:
        found, expected = ", ".join(sorted(revisions)), ", ".join(sorted(heads))
        schema = f"at {found}, expected {expected}: run `fab migrate`"
    return {"ready": revisions == set(heads), "database": "ok", "schema": schema}
