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


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url_at_0008(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'upgrade.db'}"
    else:
        url = postgres_url_for_schema(request.getfixturevalue("fresh_schema"))
    command.upgrade(alembic_config(url), "0008")
    return url


def test_0009_gives_every_stored_attachment_a_media_row(database_url_at_0008: str) -> None:
    url = database_url_at_0008
    engine = create_engine(url)
    image = '{"type": "image", "payload": {"url": "https://lookaside.fbsbx.com/a"}}'
    heart = '{"type": "like_heart"}'
    with engine.begin() as connection:
        connection.execute(
            text("INSERT INTO users (id, profile_status) VALUES ('1500000000000001', 'pending');")
        )
        connection.execute(
            text(
                "INSERT INTO conversations (account_id, customer_id)"
                " VALUES ('17841400123456789', '1500000000000001')"
            )
        )
        for mid, attachments, deleted in (
            ("two", f"[{image}, {heart}]", False),
            ("text", None, False),
            ("unsent", f"[{image}]", True),
        ):
            connection.execute(
                text(
                    "INSERT INTO messages (mid, conversation_id, direction, sender_id,"
                    " recipient_id, attachments, is_deleted, sent_at, source)"
                    " VALUES (:mid, 1, 'inbound', '1500000000000001', '17841400123456789',"
                    " :attachments, :deleted, CURRENT_TIMESTAMP, 'webhook')"
                ),
                {"mid": mid, "attachments": attachments, "deleted": deleted},
            )

    command.upgrade(alembic_config(url), "0009")
    with engine.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT m.mid, media.position, media.type, media.source_url, media.state"
                " FROM media JOIN messages m ON m.id = media.message_id ORDER BY media.position"
            )
        ).all()
    command.downgrade(alembic_config(url), "0008")
    engine.dispose()

    assert [tuple(row) for row in rows] == [
        ("two", 0, "image", "https://lookaside.fbsbx.com/a", "remote"),
        ("two", 1, "like_heart", None, "remote"),
    ]
