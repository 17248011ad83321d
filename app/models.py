"""The data model (DESIGN.md): users, conversations, messages, webhook deliveries, accounts.

Instagram ids are strings everywhere: they exceed 2^53, which JavaScript cannot hold.
"""

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    DDL,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    event,
    func,
)
from sqlalchemy import text as sql_text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import JSON, TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

IG_ID_LENGTH = 64

# Surrogate keys: BIGINT on PostgreSQL, INTEGER on SQLite (only INTEGER PRIMARY KEY autoincrements).
BigId = BigInteger().with_variant(Integer(), "sqlite")
# Payload fragments kept verbatim: JSONB on PostgreSQL, JSON text on SQLite.
JsonDocument = JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")


# Set on a dialect whose every connection runs with TimeZone UTC (app/db.py).
UTC_SESSIONS = "insta_utc_sessions"


class UTCDateTime(TypeDecorator[datetime]):
    """`timestamptz` on PostgreSQL; on SQLite naive UTC text. Always aware UTC in Python."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: store aware UTC datetimes only")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

    def result_processor(self, dialect: Dialect, coltype: object) -> Any:
        # The service's PostgreSQL connections run with TimeZone UTC (app/db.py), so psycopg2
        # already returns datetimes in UTC: a call per value, 6 per message row, saved.
        if dialect.name == "postgresql" and getattr(dialect, UTC_SESSIONS, False):
            return None
        return super().result_processor(dialect, coltype)


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: UTCDateTime(),
        dict[str, Any]: JsonDocument,
    }


class User(Base):
    """An Instagram user's cached profile (customers, and the business account itself)."""

    __tablename__ = "users"
    __table_args__ = (
        CheckConstraint(
            "profile_status IN ('pending', 'ok', 'consent_required', 'unavailable')",
            name="profile_status",
        ),
        # The fetcher looks for refusals whose customer has written since, every round.
        Index(
            "ix_users_consent_required",
            "id",
            postgresql_where=sql_text("profile_status = 'consent_required'"),
            sqlite_where=sql_text("profile_status = 'consent_required'"),
        ),
    )

    id: Mapped[str] = mapped_column(String(IG_ID_LENGTH), primary_key=True)
    username: Mapped[str | None] = mapped_column(String(255))
    name: Mapped[str | None] = mapped_column(String(255))
    profile_pic: Mapped[str | None] = mapped_column(Text)
    follower_count: Mapped[int | None] = mapped_column(Integer)
    is_user_follow_business: Mapped[bool | None] = mapped_column(Boolean)
    is_business_follow_user: Mapped[bool | None] = mapped_column(Boolean)
    is_verified_user: Mapped[bool | None] = mapped_column(Boolean)
    profile_status: Mapped[str] = mapped_column(
        String(32), default="pending", server_default="pending"
    )
    fetched_at: Mapped[datetime | None]
    # The background fetcher's queue: due when profile_due_at has passed (NULL: never, e.g.
    # until a consent_required customer writes again); a claim is a lease, so several
    # processes never fetch the same profile at once.
    profile_due_at: Mapped[datetime | None] = mapped_column(index=True)
    profile_attempts: Mapped[int] = mapped_column(default=0, server_default=sql_text("0"))
    profile_claimed_until: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow, server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(
        default=utcnow, onupdate=utcnow, server_default=func.now()
    )


class Conversation(Base):
    """The thread between one business account (IG_ID) and one customer (IGSID)."""

    __tablename__ = "conversations"
    __table_args__ = (
        UniqueConstraint("account_id", "customer_id"),
        # The inbox: newest activity first, a page at a time.
        Index("ix_conversations_last_message_at_id", "last_message_at", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    account_id: Mapped[str] = mapped_column(String(IG_ID_LENGTH))
    # The customer's IGSID. Checked at commit: intake writes the conversation first and its
    # users only when the conversation is new (one statement fewer for every other message).
    customer_id: Mapped[str] = mapped_column(
        ForeignKey("users.id", deferrable=True, initially="DEFERRED"), index=True
    )
    last_message_at: Mapped[datetime | None]
    # The last customer message: the 24-hour (7-day with HUMAN_AGENT) window runs from here.
    last_inbound_at: Mapped[datetime | None]
    # The customer has seen the business's messages up to this time (and this mid).
    customer_read_at: Mapped[datetime | None]
    customer_read_mid: Mapped[str | None] = mapped_column(Text)
    # The latest ig.me / ad referral that opened the existing thread.
    last_referral: Mapped[dict[str, Any] | None]
    last_referral_at: Mapped[datetime | None]
    # Meta's id of the thread (Conversations API only; webhooks never carry it).
    graph_conversation_id: Mapped[str | None] = mapped_column(Text)
    # A webhook named a message the service does not have: compare with Meta's list then.
    check_due_at: Mapped[datetime | None] = mapped_column(index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(
        default=utcnow, onupdate=utcnow, server_default=func.now()
    )


class Message(Base):
    """One Direct message, inbound or outbound, keyed by Meta's `mid`."""

    __tablename__ = "messages"
    __table_args__ = (
        CheckConstraint("direction IN ('inbound', 'outbound')", name="direction"),
        CheckConstraint("source IN ('webhook', 'echo', 'api', 'backfill')", name="source"),
        CheckConstraint("status IS NULL OR status IN ('pending', 'sent', 'failed')", name="status"),
        # History reads walk this index backwards: cost independent of the history length.
        Index("ix_messages_conversation_id_sent_at", "conversation_id", "sent_at", "id"),
        Index(
            "ix_messages_idempotency_key",
            "idempotency_key",
            unique=True,
            postgresql_where=sql_text("idempotency_key IS NOT NULL"),
            sqlite_where=sql_text("idempotency_key IS NOT NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    # NULL only while an API send is pending (Meta has not answered with a message_id yet).
    mid: Mapped[str | None] = mapped_column(Text, unique=True)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id"))
    direction: Mapped[str] = mapped_column(String(16))
    sender_id: Mapped[str] = mapped_column(String(IG_ID_LENGTH))
    recipient_id: Mapped[str] = mapped_column(String(IG_ID_LENGTH))
    text: Mapped[str | None] = mapped_column(Text)
    attachments: Mapped[list[dict[str, Any]] | None] = mapped_column(JsonDocument)
    reply_to: Mapped[dict[str, Any] | None]
    quick_reply_payload: Mapped[str | None] = mapped_column(Text)
    postback_payload: Mapped[str | None] = mapped_column(Text)
    referral: Mapped[dict[str, Any] | None]
    is_deleted: Mapped[bool] = mapped_column(default=False, server_default=sql_text("false"))
    deleted_at: Mapped[datetime | None]
    is_unsupported: Mapped[bool] = mapped_column(default=False, server_default=sql_text("false"))
    edit_count: Mapped[int] = mapped_column(default=0, server_default=sql_text("0"))
    edited_at: Mapped[datetime | None]
    # When the event happened (Meta's `timestamp`, ms precision), not when we stored it.
    sent_at: Mapped[datetime]
    created_at: Mapped[datetime] = mapped_column(default=utcnow, server_default=func.now())
    source: Mapped[str] = mapped_column(String(16))
    # Outbound messages sent through this service: pending → sent | failed.
    status: Mapped[str | None] = mapped_column(String(16))
    error: Mapped[dict[str, Any] | None]
    idempotency_key: Mapped[str | None] = mapped_column(String(255))
    # sha256 of the request a key was first used with: a repeat must be the same request.
    idempotency_fingerprint: Mapped[str | None] = mapped_column(String(64))
    # Created by an edit or unsend that arrived before the message itself, or imported from
    # the Conversations API without its content (older than a conversation's 20 newest); the
    # message fills it in when it comes, keeping what the later events changed.
    is_placeholder: Mapped[bool] = mapped_column(default=False, server_default=sql_text("false"))


class Reaction(Base):
    """One user's reaction to one message (a new one replaces it; unreact keeps a tombstone).

    Keyed by the message's mid, not its row: a reaction may arrive before its message.
    """

    __tablename__ = "reactions"
    __table_args__ = (UniqueConstraint("mid", "user_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    mid: Mapped[str] = mapped_column(Text)
    user_id: Mapped[str] = mapped_column(String(IG_ID_LENGTH))
    # NULL after an unreact: the row remembers when, so an older react arriving late loses.
    reaction: Mapped[str | None] = mapped_column(String(64))
    emoji: Mapped[str | None] = mapped_column(Text)
    reacted_at: Mapped[datetime]
    created_at: Mapped[datetime] = mapped_column(default=utcnow, server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(
        default=utcnow, onupdate=utcnow, server_default=func.now()
    )


class WebhookDelivery(Base):
    """One signed webhook POST from Meta, kept raw so it can be inspected and replayed."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        CheckConstraint("status IN ('applied', 'failed')", name="status"),
        Index("ix_webhook_deliveries_status_received_at", "status", "received_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    received_at: Mapped[datetime] = mapped_column(default=utcnow, server_default=func.now())
    body: Mapped[bytes] = mapped_column(LargeBinary)
    # A delivery Meta sends again byte for byte (same body, same signature) is stored once.
    # NULL only for copies stored twice before this column existed.
    body_sha256: Mapped[str | None] = mapped_column(String(64), unique=True)
    signature_valid: Mapped[bool]
    event_count: Mapped[int] = mapped_column(default=0, server_default=sql_text("0"))
    status: Mapped[str] = mapped_column(String(16))
    error: Mapped[str | None] = mapped_column(Text)
    applied_at: Mapped[datetime | None]
    replay_count: Mapped[int] = mapped_column(default=0, server_default=sql_text("0"))


ACCOUNT_STATUSES = ("active", "needs_reauth", "removed")


class Account(Base):
    """A business account the service speaks for, keyed by its IG_ID (`/me` → `user_id`, the
    `entry.id` of its webhooks), with its own access token.

    `access_token` is sealed (app/services/tokens/cipher.py), never stored in clear; it is
    NULL only for an account configured by INSTAGRAM_ACCOUNT_ID without a token. Its expiry is
    assumed (60 days) until a refresh answer tells the real one.
    """

    __tablename__ = "accounts"
    __table_args__ = (
        CheckConstraint(
            "status IN ('active', 'needs_reauth', 'removed')",
            name="status",
        ),
    )

    id: Mapped[str] = mapped_column(String(IG_ID_LENGTH), primary_key=True)
    username: Mapped[str | None] = mapped_column(String(255))
    # active → needs_reauth (Meta answered 190) → active (a call accepted, a new token);
    # removed: never called for again, its conversations stay readable.
    status: Mapped[str] = mapped_column(String(16), default="active", server_default="active")
    access_token: Mapped[str | None] = mapped_column(Text)
    # The sha256 of the INSTAGRAM_USER_TOKEN this account's token descends from (the
    # environment's account only): a newly configured token replaces the stored one.
    configured_token_sha256: Mapped[str | None] = mapped_column(String(64))
    # When this access token was obtained (first seen, or refreshed): Meta refreshes only
    # tokens at least a day old.
    issued_at: Mapped[datetime | None]
    expires_at: Mapped[datetime | None]
    # True until a refresh answer tells the real expiry (then 60 days is only a guess).
    expiry_assumed: Mapped[bool] = mapped_column(default=True, server_default=sql_text("true"))
    refreshed_at: Mapped[datetime | None]
    # A lease: the one process refreshing the token (after a failure: when to try again).
    refresh_claimed_until: Mapped[datetime | None]
    refresh_error: Mapped[str | None] = mapped_column(Text)
    # Meta rejected the token (code 190): the first time, and why.
    invalid_since: Mapped[datetime | None]
    invalid_reason: Mapped[str | None] = mapped_column(Text)
    # The webhook fields Meta reported after the last subscribe (NULL: never subscribed here).
    subscribed_fields: Mapped[list[str] | None] = mapped_column(JsonDocument)
    subscribed_at: Mapped[datetime | None]
    # The last delivery with an entry of this account (to the minute: see accounts repository).
    last_webhook_at: Mapped[datetime | None]
    removed_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow, server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(
        default=utcnow, onupdate=utcnow, server_default=func.now()
    )


class PendingEntry(Base):
    """A delivery holding entries of an account the service does not serve (yet): applied
    through the normal intake when that account is added, then deleted."""

    __tablename__ = "pending_entries"

    account_id: Mapped[str] = mapped_column(String(IG_ID_LENGTH), primary_key=True)
    delivery_id: Mapped[int] = mapped_column(
        BigId,
        ForeignKey("webhook_deliveries.id", ondelete="CASCADE"),
        primary_key=True,
        index=True,
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow, server_default=func.now())


class SyncJob(Base):
    """A history backfill of one account from the Conversations API (`fab backfill`,
    `POST /api/v1/accounts/{id}/sync`): first the list of its conversations, then each one.
    Resumable: a crashed run's lease runs out and another worker goes on where it stopped."""

    __tablename__ = "sync_jobs"
    __table_args__ = (
        CheckConstraint("status IN ('queued', 'running', 'done', 'failed')", name="status"),
        Index("ix_sync_jobs_status_id", "status", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    account_id: Mapped[str] = mapped_column(String(IG_ID_LENGTH), index=True)
    status: Mapped[str] = mapped_column(String(16), default="queued")
    # Only conversations updated since then (`--days`); None: all of them.
    since: Mapped[datetime | None]
    # Where listing the account's conversations goes on (Meta's `after` cursor).
    list_cursor: Mapped[str | None] = mapped_column(Text)
    listed: Mapped[bool] = mapped_column(default=False, server_default=sql_text("false"))
    conversations_total: Mapped[int] = mapped_column(default=0, server_default=sql_text("0"))
    conversations_done: Mapped[int] = mapped_column(default=0, server_default=sql_text("0"))
    conversations_failed: Mapped[int] = mapped_column(default=0, server_default=sql_text("0"))
    messages_imported: Mapped[int] = mapped_column(default=0, server_default=sql_text("0"))
    placeholders_imported: Mapped[int] = mapped_column(default=0, server_default=sql_text("0"))
    error: Mapped[str | None] = mapped_column(Text)
    claimed_until: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow, server_default=func.now())
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    updated_at: Mapped[datetime] = mapped_column(
        default=utcnow, onupdate=utcnow, server_default=func.now()
    )


class SyncJobConversation(Base):
    """One conversation of a backfill: listed first, imported later, each error kept."""

    __tablename__ = "sync_job_conversations"
    __table_args__ = (CheckConstraint("status IN ('pending', 'done', 'failed')", name="status"),)

    job_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("sync_jobs.id", ondelete="CASCADE"), primary_key=True
    )
    graph_conversation_id: Mapped[str] = mapped_column(Text, primary_key=True)
    # The order Meta listed them in (newest activity first): imported in that order.
    position: Mapped[int]
    customer_id: Mapped[str | None] = mapped_column(String(IG_ID_LENGTH))
    updated_time: Mapped[datetime | None]
    status: Mapped[str] = mapped_column(String(16), default="pending")
    messages: Mapped[int] = mapped_column(default=0, server_default=sql_text("0"))
    error: Mapped[str | None] = mapped_column(Text)


class AccountSync(Base):
    """Where an account's history checks stand: its sweep's clock and lease, and the gaps
    found (messages Meta lists that the service did not have) and filled."""

    __tablename__ = "account_sync"

    account_id: Mapped[str] = mapped_column(String(IG_ID_LENGTH), primary_key=True)
    last_sweep_at: Mapped[datetime | None]
    # Held while a process calls the Conversations API for this account: one at a time.
    claimed_until: Mapped[datetime | None]
    gaps_found: Mapped[int] = mapped_column(default=0, server_default=sql_text("0"))
    gaps_filled: Mapped[int] = mapped_column(default=0, server_default=sql_text("0"))
    last_error: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(
        default=utcnow, onupdate=utcnow, server_default=func.now()
    )


class Event(Base):
    """The outbox: one row per change a consumer cares about, written in the transaction of
    the change itself, its payload a snapshot of the object as /api/v1 showed it then.

    `seq` orders the feed, the stream and each endpoint's deliveries; on PostgreSQL
    transactions can commit it out of order, so readers stop at a safe horizon
    (app/services/events/horizon.py).
    """

    __tablename__ = "events"
    __table_args__ = (Index("ix_events_created_at", "created_at"),)

    seq: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(40), unique=True)
    type: Mapped[str] = mapped_column(String(64))
    account_id: Mapped[str | None] = mapped_column(String(IG_ID_LENGTH))
    # The customer's IGSID: deliveries of one conversation to one endpoint keep `seq` order.
    conversation: Mapped[str | None] = mapped_column(String(IG_ID_LENGTH))
    payload: Mapped[dict[str, Any]] = mapped_column(JsonDocument)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, server_default=func.now())


# The outbox's writer lock: pg_advisory_xact_lock_shared(classid, objid), ("inst", "evts" as
# 32-bit integers). On PostgreSQL every INSERT into `events` takes it first (shared, until the
# transaction ends), before it draws any `seq`, so whoever writes events is seen by the safe
# horizon (app/services/events/horizon.py). Migration 0015 made the same trigger.
EVENTS_WRITER_LOCK = (0x696E7374, 0x65767473)
for _ddl in (
    "CREATE FUNCTION events_take_writer_lock() RETURNS trigger LANGUAGE plpgsql AS $$ "
    f"BEGIN PERFORM pg_advisory_xact_lock_shared{EVENTS_WRITER_LOCK}; RETURN NULL; END $$",
    "CREATE TRIGGER events_writer_lock BEFORE INSERT ON events "
    "FOR EACH STATEMENT EXECUTE FUNCTION events_take_writer_lock()",
):
    _take_lock = DDL(_ddl).execute_if(dialect="postgresql")  # type: ignore[no-untyped-call]
    event.listen(Event.__table__, "after_create", _take_lock)


MEDIA_STATES = ("remote", "pending", "stored", "too_large", "unsupported", "expired", "failed")


class Media(Base):
    """One attachment of one message: the CDN URL Meta gave, and (when the operator archives
    media) where its bytes are kept. Its id is the stable handle `/api/v1/media/{id}` serves.

    `remote`: only the URL is kept (MEDIA_ARCHIVE=off, Meta's policy); `pending`: the download
    worker will fetch it; `stored`: the bytes are under `storage_key`; `too_large`,
    `unsupported`, `expired`, `failed`: not archived, and why (the URL is kept). When its
    message is unsent (or its account removed) the row gets `deleted_at` and its bytes are
    purged.
    """

    __tablename__ = "media"
    __table_args__ = (
        UniqueConstraint("message_id", "position"),
        CheckConstraint(f"state IN {MEDIA_STATES!r}", name="state"),
        # The download worker's queue: pending media, due first.
        Index(
            "ix_media_pending_due_at",
            "due_at",
            postgresql_where=sql_text("state = 'pending'"),
            sqlite_where=sql_text("state = 'pending'"),
        ),
        # Stored bytes: retention walks them oldest first; a purge asks who else shares a key.
        Index("ix_media_storage_key", "storage_key"),
        Index(
            "ix_media_stored_at",
            "stored_at",
            postgresql_where=sql_text("storage_key IS NOT NULL"),
            sqlite_where=sql_text("storage_key IS NOT NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    # NULL once its message row is gone (an account removed, an echo folded into our send's
    # row): the worker purges the bytes, housekeeping the row.
    message_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id", ondelete="SET NULL"))
    # The attachment's index in the message's `attachments` list.
    position: Mapped[int] = mapped_column(Integer)
    type: Mapped[str] = mapped_column(String(64))
    source_url: Mapped[str | None] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(16))
    storage_key: Mapped[str | None] = mapped_column(String(128))
    content_type: Mapped[str | None] = mapped_column(String(128))
    size_bytes: Mapped[int | None] = mapped_column(BigInteger)
    sha256: Mapped[str | None] = mapped_column(String(64))
    attempts: Mapped[int] = mapped_column(default=0, server_default=sql_text("0"))
    due_at: Mapped[datetime | None]
    # A lease: the worker downloading it (several processes never fetch the same file).
    claimed_until: Mapped[datetime | None]
    error: Mapped[str | None] = mapped_column(Text)
    stored_at: Mapped[datetime | None]
    # Its message was unsent: never served again; the download worker deletes the bytes.
    deleted_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow, server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(
        default=utcnow, onupdate=utcnow, server_default=func.now()
    )


class WebhookEndpoint(Base):
    """A consumer's URL that receives events (Standard Webhooks), with its filters and its
    signing secret; `dispatched_seq` is how far the outbox was fanned out to it."""

    __tablename__ = "webhook_endpoints"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    url: Mapped[str] = mapped_column(Text)
    description: Mapped[str | None] = mapped_column(Text)
    # NULL: every type / every account.
    event_types: Mapped[list[str] | None] = mapped_column(JsonDocument)
    account_ids: Mapped[list[str] | None] = mapped_column(JsonDocument)
    # Sealed (app/services/tokens/cipher.py), as is previous_secret: never stored in clear.
    secret: Mapped[str] = mapped_column(Text)
    # After a rotation the old secret also signs, until previous_secret_until.
    previous_secret: Mapped[str | None] = mapped_column(Text)
    previous_secret_until: Mapped[datetime | None]
    enabled: Mapped[bool] = mapped_column(default=True, server_default=sql_text("true"))
    disabled_reason: Mapped[str | None] = mapped_column(Text)
    disabled_at: Mapped[datetime | None]
    # Since when every attempt has failed (NULL after a success): disabled after
    # EVENTS_DISABLE_AFTER_HOURS.
    failing_since: Mapped[datetime | None]
    dispatched_seq: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(default=utcnow, server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(
        default=utcnow, onupdate=utcnow, server_default=func.now()
    )


class EventDelivery(Base):
    """One event to one endpoint: pending until a 2xx (succeeded) or the retry schedule is
    spent (failed). Claimed with a lease (`claimed_until`), so one process makes each attempt."""

    __tablename__ = "event_deliveries"
    __table_args__ = (
        UniqueConstraint("endpoint_id", "event_seq"),
        CheckConstraint("status IN ('pending', 'succeeded', 'failed')", name="status"),
        # Only pending deliveries are looked for, so only they are indexed: what is due, in
        # the order a claim takes it (an index scan that stops at its LIMIT, however long
        # the backlog); and per endpoint and conversation the oldest still pending (one
        # probe, however long the conversation's delivered history).
        Index(
            "ix_event_deliveries_due",
            "next_attempt_at",
            "id",
            postgresql_where=sql_text("status = 'pending'"),
            sqlite_where=sql_text("status = 'pending'"),
        ),
        Index(
            "ix_event_deliveries_pending_conversation",
            "endpoint_id",
            "conversation",
            "event_seq",
            postgresql_where=sql_text("status = 'pending'"),
            sqlite_where=sql_text("status = 'pending'"),
        ),
        Index("ix_event_deliveries_event_seq", "event_seq"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    endpoint_id: Mapped[str] = mapped_column(ForeignKey("webhook_endpoints.id", ondelete="CASCADE"))
    event_seq: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"),
        ForeignKey("events.seq", ondelete="CASCADE"),
    )
    # The event's conversation ('' for events of none): the unit of order per endpoint.
    conversation: Mapped[str] = mapped_column(String(IG_ID_LENGTH))
    status: Mapped[str] = mapped_column(String(16), default="pending", server_default="pending")
    attempts: Mapped[int] = mapped_column(default=0, server_default=sql_text("0"))
    next_attempt_at: Mapped[datetime]
    claimed_until: Mapped[datetime | None]
    delivered_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow, server_default=func.now())


class EventDeliveryAttempt(Base):
    """One attempt of a delivery and what came of it (`GET .../deliveries` lists them);
    deleted with its delivery."""

    __tablename__ = "event_delivery_attempts"
    # The endpoint's attempts, newest first.
    __table_args__ = (Index("ix_event_delivery_attempts_endpoint_id_id", "endpoint_id", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    delivery_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("event_deliveries.id", ondelete="CASCADE"), index=True
    )
    endpoint_id: Mapped[str] = mapped_column(ForeignKey("webhook_endpoints.id", ondelete="CASCADE"))
    # 1 for the first attempt (a replay starts again at 1).
    number: Mapped[int]
    attempted_at: Mapped[datetime]
    status_code: Mapped[int | None]
    duration_ms: Mapped[int]
    error: Mapped[str | None] = mapped_column(Text)
