"""Migrations that carry data over, checked with data on both databases."""

import hashlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from alembic import command
from cryptography.fernet import Fernet
from sqlalchemy import Connection, create_engine, text
from sqlalchemy.orm import sessionmaker
from standardwebhooks.webhooks import Webhook

from app.config import Settings
from app.models import utcnow
from app.services.events.delivery import Deliverer
from app.services.events.horizon import Horizon
from app.services.events.signing import new_secret
from app.services.tokens import TokenStore, fingerprint
from app.services.tokens.cipher import cipher_for, derived_key
from tests.conftest import alembic_config, postgres_url_for_schema
from tests.events.receiver import Receiver
from tests.helpers import ACCOUNT_ID, TOKEN_KEY, USER_TOKEN

# A Deliverer's settings in these tests: the receiver is on loopback; one quick attempt.
DELIVERY_SETTINGS = {"events_allow_private_urls": True, "events_timeout_seconds": 5}


def database_at(request: pytest.FixtureRequest, tmp_path: Path, revision: str) -> str:
    """A new database of the fixture's backend (`request.param`), migrated up to `revision`."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'upgrade.db'}"
    else:
        url = postgres_url_for_schema(request.getfixturevalue("fresh_schema"))
    command.upgrade(alembic_config(url), revision)
    return url


def add_endpoint_and_pings(connection: Connection, seqs: tuple[int, ...] = (1, 2)) -> None:
    """Endpoint `we_1` and ping events of these seqs (`evt_<seq>`)."""
    connection.execute(
        text("INSERT INTO webhook_endpoints (id, url, secret) VALUES ('we_1', 'x', 'whsec_x')")
    )
    for seq in seqs:
        connection.execute(
            text("INSERT INTO events (seq, id, type, payload) VALUES (:seq, :id, 'ping', '{}')"),
            {"seq": seq, "id": f"evt_{seq}"},
        )


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url_at_0006(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return database_at(request, tmp_path, "0006")


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
def database_url_at_0007(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return database_at(request, tmp_path, "0007")


def test_0012_carries_the_single_token_over_to_the_account_of_the_stored_conversations(
    database_url_at_0007: str,
) -> None:
    # A database of the single-account days (its token refreshed since it was configured)
    # upgrades to an account row the service keeps using, with no setting changed.
    url = database_url_at_0007
    refreshed = "IGAArefreshed-since-configured"
    sealed = Fernet(derived_key(USER_TOKEN)).encrypt(refreshed.encode()).decode()
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(
            text("INSERT INTO users (id, profile_status) VALUES ('1187429836452190', 'ok')")
        )
        connection.execute(
            text(
                "INSERT INTO conversations (account_id, customer_id) "
                "VALUES (:account, '1187429836452190')"
            ),
            {"account": ACCOUNT_ID},
        )
        connection.execute(
            text(
                "INSERT INTO instagram_tokens (source_fingerprint, access_token, issued_at, "
                "expires_at, expiry_assumed, refreshed_at) VALUES (:sha, :token, :issued, "
                ":expires, false, :issued)"
            ),
            {
                "sha": fingerprint(USER_TOKEN),
                "token": sealed,
                "issued": datetime(2026, 11, 1, tzinfo=UTC),
                "expires": datetime(2026, 12, 31, tzinfo=UTC),
            },
        )

    command.upgrade(alembic_config(url), "0012")

    with engine.connect() as connection:
        account = connection.execute(
            text("SELECT id, status, configured_token_sha256, expiry_assumed FROM accounts")
        ).one()
    assert tuple(account) == (ACCOUNT_ID, "active", fingerprint(USER_TOKEN), False)
    # The service, configured as before (no INSTAGRAM_ACCOUNT_ID, the same token), adopts the
    # account without replacing the refreshed token, and calls with it.
    settings = Settings(
        _env_file=None, database_url=url, instagram_user_token=USER_TOKEN, token_cache_seconds=0
    )
    store = TokenStore(settings=settings, session_factory=sessionmaker(bind=engine))
    store.adopt(ACCOUNT_ID)
    assert store.current(ACCOUNT_ID) == refreshed
    assert store.status(ACCOUNT_ID).expires_at == datetime(2026, 12, 31, tzinfo=UTC)

    command.downgrade(alembic_config(url), "0007")
    with engine.connect() as connection:
        carried_back = connection.execute(
            text("SELECT source_fingerprint FROM instagram_tokens")
        ).scalars()
        assert list(carried_back) == [fingerprint(USER_TOKEN)]
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url_at_0008(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return database_at(request, tmp_path, "0008")


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


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url_at_0012(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return database_at(request, tmp_path, "0012")


def test_0013_keeps_the_last_attempt_of_each_attempted_delivery(database_url_at_0012: str) -> None:
    url = database_url_at_0012
    engine = create_engine(url)
    with engine.begin() as connection:
        add_endpoint_and_pings(connection)
        connection.execute(
            text(
                "INSERT INTO event_deliveries (endpoint_id, event_seq, conversation, status,"
                " attempts, next_attempt_at, last_attempt_at, last_status_code,"
                " last_duration_ms, last_error) VALUES"
                " ('we_1', 1, '', 'pending', 2, :at, :at, 503, 41, 'HTTP 503'),"
                " ('we_1', 2, '', 'pending', 0, :at, NULL, NULL, NULL, NULL)"
            ),
            {"at": datetime(2026, 11, 30, 13, 31, tzinfo=UTC)},
        )

    command.upgrade(alembic_config(url), "0013")
    with engine.connect() as connection:
        attempts = connection.execute(
            text(
                "SELECT d.event_seq, a.endpoint_id, a.number, a.status_code, a.duration_ms,"
                " a.error FROM event_delivery_attempts a"
                " JOIN event_deliveries d ON d.id = a.delivery_id"
            )
        ).all()
    command.downgrade(alembic_config(url), "0012")
    engine.dispose()

    assert [tuple(row) for row in attempts] == [(1, "we_1", 2, 503, 41, "HTTP 503")]


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url_at_0013(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return database_at(request, tmp_path, "0013")


def test_0014_seals_stored_endpoint_secrets_and_deliveries_still_verify(
    database_url_at_0013: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = database_url_at_0013
    current, previous = new_secret(), new_secret()
    receiver = Receiver()
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO webhook_endpoints (id, url, secret, previous_secret,"
                " previous_secret_until, dispatched_seq) VALUES"
                " ('we_1', :url, :current, :previous, :until, 1)"
            ),
            {
                "url": receiver.url,
                "current": current,
                "previous": previous,
                "until": utcnow() + timedelta(hours=1),
            },
        )
        connection.execute(
            text(
                "INSERT INTO events (seq, id, type, payload, created_at)"
                " VALUES (1, 'evt_1', 'ping', '{\"endpoint_id\": \"we_1\"}', :now)"
            ),
            {"now": utcnow()},
        )
        connection.execute(
            text(
                "INSERT INTO event_deliveries (endpoint_id, event_seq, conversation, status,"
                " attempts, next_attempt_at) VALUES ('we_1', 1, '', 'pending', 0, :now)"
            ),
            {"now": utcnow()},
        )
    monkeypatch.setenv("TOKEN_ENCRYPTION_KEY", TOKEN_KEY)
    settings = Settings(
        _env_file=None, database_url=url, token_encryption_key=TOKEN_KEY, **DELIVERY_SETTINGS
    )
    cipher = cipher_for(settings)

    try:
        command.upgrade(alembic_config(url), "0014")
        with engine.connect() as connection:
            sealed = connection.execute(
                text("SELECT secret, previous_secret FROM webhook_endpoints")
            )
            stored = tuple(sealed.one())
        deliverer = Deliverer(
            session_factory=sessionmaker(bind=engine), settings=settings, horizon=Horizon()
        )
        deliverer.run_once()
        deliverer.http.close()
        command.downgrade(alembic_config(url), "0013")
        with engine.connect() as connection:
            in_clear = connection.execute(
                text("SELECT secret, previous_secret FROM webhook_endpoints")
            )
            downgraded = tuple(in_clear.one())
    finally:
        receiver.close()
        engine.dispose()

    assert current not in stored[0]
    assert previous not in stored[1]
    assert (cipher.open(stored[0]), cipher.open(stored[1])) == (current, previous)
    [got] = receiver.all()
    for secret in (current, previous):
        assert Webhook(secret).verify(got.body, got.headers)["type"] == "ping"
    assert downgraded == (current, previous)


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url_at_0016(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return database_at(request, tmp_path, "0016")


def test_0016_downgrade_fills_the_last_attempt_columns_from_the_attempts(
    database_url_at_0016: str,
) -> None:
    url = database_url_at_0016
    at = datetime(2026, 11, 30, 20, 0, tzinfo=UTC)
    engine = create_engine(url)
    with engine.begin() as connection:
        add_endpoint_and_pings(connection)
        for seq in (1, 2):
            connection.execute(
                text(
                    "INSERT INTO event_deliveries (id, endpoint_id, event_seq, conversation,"
                    " status, attempts, next_attempt_at) VALUES (:seq, 'we_1', :seq, '',"
                    " 'pending', :attempts, :at)"
                ),
                {"seq": seq, "attempts": 2 if seq == 1 else 0, "at": at},
            )
        connection.execute(
            text(
                "INSERT INTO event_delivery_attempts (delivery_id, endpoint_id, number,"
                " attempted_at, status_code, duration_ms, error) VALUES"
                " (1, 'we_1', 1, :first, NULL, 5000, 'no answer within 15 s'),"
                " (1, 'we_1', 2, :at, 503, 41, 'HTTP 503')"
            ),
            {"first": at - timedelta(minutes=5), "at": at},
        )
    engine.dispose()

    command.downgrade(alembic_config(url), "0015")
    engine = create_engine(url)
    with engine.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT event_seq, last_status_code, last_duration_ms, last_error,"
                " last_attempt_at IS NOT NULL FROM event_deliveries ORDER BY event_seq"
            )
        ).all()
    command.upgrade(alembic_config(url), "head")
    engine.dispose()

    assert [tuple(row) for row in rows] == [
        (1, 503, 41, "HTTP 503", True),
        (2, None, None, None, False),
    ]
