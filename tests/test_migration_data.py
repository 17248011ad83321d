"""Migrations that carry data over, checked with data on both databases."""

import hashlib
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import create_engine, text

from tests.conftest import alembic_config, postgres_url_for_schema


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url_at_0006(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'upgrade.db'}"
    else:
        url = postgres_url_for_schema(request.getfixturevalue("fresh_schema"))
    command.upgrade(alembic_config(url), "0006")
    return url


def test_0007_hashes_stored_deliveries_and_keeps_every_copy(database_url_at_0006: str) -> None:
    url = database_url_at_0006
    engine = create_engine(url)
    with engine.begin() as connection:
        for body in (b"same", b"same", b"other"):
            connection.execute(
                text(
                    "INSERT INTO webhook_deliveries (body, signature_valid, status, received_at)"
                    " VALUES (:body, true, 'applied', CURRENT_TIMESTAMP)"
                ),
                {"body": body},
            )

    command.upgrade(alembic_config(url), "0007")
    with engine.connect() as connection:
        hashes = (
            connection.execute(text("SELECT body_sha256 FROM webhook_deliveries ORDER BY id"))
            .scalars()
            .all()
        )
    command.downgrade(alembic_config(url), "0006")
    with engine.connect() as connection:
        kept = connection.execute(text("SELECT count(*) FROM webhook_deliveries")).scalar_one()
    engine.dispose()

    assert hashes == [
        hashlib.sha256(b"same").hexdigest(),
        None,
        hashlib.sha256(b"other").hexdigest(),
    ]
    assert kept == 3
