"""Alembic: upgrade → downgrade → upgrade on both databases, and no drift from the models."""

from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text

from app.models import Base
from app.repositories.events import WRITER_LOCK
from tests.conftest import alembic_config, postgres_url_for_schema

TABLES = {
    "users",
    "conversations",
    "messages",
    "reactions",
    "webhook_deliveries",
    "accounts",
    "pending_entries",
    "sync_jobs",
    "sync_job_conversations",
    "account_sync",
    "events",
    "media",
    "webhook_endpoints",
    "event_deliveries",
    "event_delivery_attempts",
}


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def empty_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'migrations.db'}"
    else:
        yield postgres_url_for_schema(request.getfixturevalue("fresh_schema"))


def tables(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        return set(inspect(engine).get_table_names()) - {"alembic_version"}
    finally:
        engine.dispose()


def test_upgrade_downgrade_upgrade(empty_database_url: str) -> None:
    config = alembic_config(empty_database_url)

    command.upgrade(config, "head")
    assert tables(empty_database_url) == TABLES
    command.downgrade(config, "base")
    assert tables(empty_database_url) == set()
    command.upgrade(config, "head")
    assert tables(empty_database_url) == TABLES


def test_autogenerate_finds_no_drift_between_migrations_and_models(empty_database_url: str) -> None:
    command.upgrade(alembic_config(empty_database_url), "head")
    engine = create_engine(empty_database_url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(
                connection, opts={"compare_type": True, "compare_server_default": True}
            )
            differences = compare_metadata(context, Base.metadata)
    finally:
        engine.dispose()

    assert differences == []


def test_migration_files_have_dated_names_and_one_head() -> None:
    versions = Path(__file__).resolve().parents[1] / "alembic" / "versions"
    names = sorted(path.name for path in versions.glob("*.py"))

    assert names
    for name in names:
        date, _, slug = name.partition("-")
        assert len(date) == len("2026_11_29_1016"), name
        assert len(slug) > len(".py"), name


def test_the_events_migration_queues_existing_pending_profiles(empty_database_url: str) -> None:
    config = alembic_config(empty_database_url)
    command.upgrade(config, "0001")
    engine = create_engine(empty_database_url)
    with engine.begin() as connection:
        connection.execute(
            text("INSERT INTO users (id, profile_status) VALUES ('1', 'pending'), ('2', 'ok')")
        )

    command.upgrade(config, "head")

    with engine.connect() as connection:
        due = dict(connection.execute(text("SELECT id, profile_due_at FROM users")).all())
    engine.dispose()
    assert due["1"] is not None
    assert due["2"] is None


def holds_the_events_writer_lock_after_an_insert(url: str) -> bool:
    """Insert an event with nothing but SQL, and see whether this transaction then holds the
    outbox's writer lock (the safe horizon's: app/repositories/events.py)."""
    engine = create_engine(url)
    try:
        with engine.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO events (id, type, payload, created_at) "
                    "VALUES ('evt_x', 'ping', '{}', now())"
                )
            )
            held = connection.execute(
                text(
                    "SELECT count(*) FROM pg_locks WHERE pid = pg_backend_pid() AND "
                    "locktype = 'advisory' AND classid = :classid AND objid = :objid"
                ),
                {"classid": WRITER_LOCK[0], "objid": WRITER_LOCK[1]},
            ).scalar_one()
            connection.rollback()
            return bool(held)
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_on_postgresql_an_event_insert_takes_the_writer_lock_itself(fresh_schema: str) -> None:
    url = postgres_url_for_schema(fresh_schema)
    config = alembic_config(url)
    command.upgrade(config, "0014")
    assert not holds_the_events_writer_lock_after_an_insert(url)
    command.upgrade(config, "head")
    assert holds_the_events_writer_lock_after_an_insert(url)
    command.downgrade(config, "0014")
    assert not holds_the_events_writer_lock_after_an_insert(url)
