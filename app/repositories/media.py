"""SQL for `media`: one row per attachment of a message, and the download worker's queue."""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Row, delete, func, or_, select, update
from sqlalchemy.orm import Session

from app.models import Conversation, Media, Message
from app.repositories.base import rows_upsert

MEDIA = Media.__table__
MESSAGES = Message.__table__


@dataclass(frozen=True, slots=True, kw_only=True)
class NewMedia:
    """A media row to create for attachment `position` of message `message_id`."""

    message_id: int
    position: int
    type: str
    source_url: str | None
    state: str
    due_at: datetime | None
    created_at: datetime
    updated_at: datetime


def add_many(session: Session, rows: Sequence[NewMedia]) -> None:
    """Insert media rows; one that exists (same message and position) is left as it is."""
    rows_upsert(
        session,
        key="media.add",
        table=MEDIA,
        rows=sorted(rows, key=lambda row: (row.message_id, row.position)),
        same={"attempts": 0},
        finish=lambda insert: insert.on_conflict_do_nothing(
            index_elements=[MEDIA.c.message_id, MEDIA.c.position]
        ),
    )


def attachments_of(session: Session, mids: Iterable[str]) -> Sequence[Row[Any]]:
    """`(id, attachments)` of the stored messages with these mids that have attachments and
    are not unsent."""
    return session.execute(
        select(Message.id, Message.attachments).where(
            Message.mid.in_(list(mids)),
            Message.attachments.is_not(None),
            Message.is_deleted.is_(False),
        )
    ).all()


def of_messages(session: Session, message_ids: list[int]) -> dict[int, dict[int, Row[Any]]]:
    """The media of these messages: by message id, then by position."""
    if not message_ids:
        return {}
    rows = session.connection().execute(
        select(
            MEDIA.c.id, MEDIA.c.message_id, MEDIA.c.position, MEDIA.c.source_url, MEDIA.c.state
        ).where(MEDIA.c.message_id.in_(message_ids))
    )
    found: dict[int, dict[int, Row[Any]]] = {}
    for row in rows:
        found.setdefault(row.message_id, {})[row.position] = row
    return found


def with_message(session: Session, media_id: int) -> Row[Any] | None:
    """A media row with what serving it needs of its message and conversation: `mid`,
    `conversation_id`, `sent_at`, `account_id`."""
    return session.execute(
        select(
            Media,
            Message.mid,
            Message.conversation_id,
            Message.sent_at,
            Conversation.account_id,
        )
        .join(Message, Message.id == Media.message_id)
        .join(Conversation, Conversation.id == Message.conversation_id)
        .where(Media.id == media_id)
    ).first()


def set_source(
    session: Session,
    *,
    media_id: int,
    source_url: str | None,
    state: str,
    due_at: datetime | None = None,
) -> None:
    """A new CDN URL (or none), and what it is known to be (`pending`: due at `due_at`)."""
    values: dict[str, Any] = {"source_url": source_url, "state": state}
    if state == "pending":
        values |= {"due_at": due_at, "attempts": 0, "error": None}
    session.execute(update(Media).where(Media.id == media_id).values(**values))


def mark_deleted_of_mids(session: Session, mids: Iterable[str], *, at: datetime) -> None:
    """The media of unsent messages: never served again, their bytes to be purged."""
    messages = select(Message.id).where(Message.mid.in_(list(mids)))
    session.execute(
        update(Media)
        .where(Media.message_id.in_(messages.scalar_subquery()), Media.deleted_at.is_(None))
        .values(deleted_at=at, state="remote", due_at=None)
    )


# The download worker's queue


def claim_due(
    session: Session, *, now: datetime, claim_until: datetime, limit: int
) -> Sequence[Media]:
    """Lease up to `limit` pending media whose time has come (SKIP LOCKED: another process
    takes others); the caller commits the claim."""
    candidates = (
        select(Media)
        .where(
            Media.state == "pending",
            Media.due_at <= now,
            Media.deleted_at.is_(None),
            Media.message_id.is_not(None),
            or_(Media.claimed_until.is_(None), Media.claimed_until < now),
        )
        .order_by(Media.due_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    claimed = session.scalars(candidates).all()
    for media in claimed:
        media.claimed_until = claim_until
    session.flush()
    return claimed


def finish(session: Session, *, media_id: int, **values: Any) -> bool:
    """Record the outcome of a download (and release the lease), unless the media was
    unsent (or its message removed) meanwhile; whether it was recorded."""
    result = session.execute(
        update(Media)
        .where(Media.id == media_id, Media.deleted_at.is_(None), Media.message_id.is_not(None))
        .values(claimed_until=None, **values)
    )
    return bool(getattr(result, "rowcount", 0))


def pending_count(session: Session) -> int:
    """How many media wait for the download worker."""
    pending = select(func.count()).select_from(Media).where(Media.state == "pending")
    return session.scalar(pending) or 0


# Purges


def to_purge(session: Session, *, limit: int) -> Sequence[Row[Any]]:
    """`(id, storage_key)` of media whose bytes must go (unsent, account removed, message
    gone) and are still kept."""
    return session.execute(
        select(Media.id, Media.storage_key)
        .where(
            or_(Media.deleted_at.is_not(None), Media.message_id.is_(None)),
            Media.storage_key.is_not(None),
        )
        .limit(limit)
    ).all()


def stored_before(session: Session, *, before: datetime, limit: int) -> Sequence[Row[Any]]:
    """`(id, storage_key)` of media whose bytes were stored before then."""
    return session.execute(
        select(Media.id, Media.storage_key)
        .where(Media.storage_key.is_not(None), Media.stored_at < before)
        .order_by(Media.stored_at)
        .limit(limit)
    ).all()


def forget_bytes(session: Session, media_ids: list[int]) -> None:
    """These media no longer have bytes: back to their URL only."""
    if media_ids:
        session.execute(
            update(Media)
            .where(Media.id.in_(media_ids))
            .values(storage_key=None, stored_at=None, state="remote")
        )


def keys_still_used(session: Session, keys: Iterable[str], *, besides: list[int]) -> set[str]:
    """Of these content-addressed keys, those another live media row still stores."""
    keys = list(keys)
    if not keys:
        return set()
    return set(
        session.scalars(
            select(Media.storage_key).where(
                Media.storage_key.in_(keys),
                Media.id.not_in(besides),
                Media.deleted_at.is_(None),
                Media.message_id.is_not(None),
            )
        )
    )


def mark_deleted_of_account(session: Session, account_id: str, *, at: datetime) -> int:
    """The media of an account's messages: never served again, bytes to be purged; how many."""
    messages = (
        select(Message.id)
        .join(Conversation, Conversation.id == Message.conversation_id)
        .where(Conversation.account_id == account_id)
    )
    result = session.execute(
        update(Media)
        .where(Media.message_id.in_(messages.scalar_subquery()), Media.deleted_at.is_(None))
        .values(deleted_at=at, state="remote", due_at=None)
    )
    return int(getattr(result, "rowcount", 0) or 0)


def delete_orphans(session: Session, *, limit: int) -> int:
    """Delete up to `limit` rows whose message is gone and whose bytes are purged; how many."""
    doomed = (
        select(Media.id).where(Media.message_id.is_(None), Media.storage_key.is_(None)).limit(limit)
    )
    result = session.execute(delete(Media).where(Media.id.in_(doomed.scalar_subquery())))
    return int(getattr(result, "rowcount", 0) or 0)
