"""Media rows for the attachments of stored messages: every attachment gets one, in the
transaction that stores its message (webhook intake, and sends through the API)."""

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from app.models import utcnow
from app.repositories import media
from app.repositories.media import NewMedia


def url_of(attachment: Any) -> str | None:
    """The CDN URL of an attachment (`payload.url`), if it has one."""
    payload = attachment.get("payload") if isinstance(attachment, dict) else None
    url = payload.get("url") if isinstance(payload, dict) else None
    return url if isinstance(url, str) and url.startswith(("https://", "http://")) else None


def rows_for(message_id: int, attachments: Any, *, archive: bool, now: datetime) -> list[NewMedia]:
    """One media row per attachment: `pending` (for the download worker) when media is
    archived and there is a URL to fetch, else `remote` (only the URL is kept)."""
    rows = []
    for position, attachment in enumerate(attachments if isinstance(attachments, list) else []):
        kind = attachment.get("type") if isinstance(attachment, dict) else None
        url = url_of(attachment)
        pending = archive and url is not None
        rows.append(
            NewMedia(
                message_id=message_id,
                position=position,
                type=kind[:64] if isinstance(kind, str) and kind else "unknown",
                source_url=url,
                state="pending" if pending else "remote",
                due_at=now if pending else None,
                created_at=now,
                updated_at=now,
            )
        )
    return rows


def create_for_mids(session: Session, mids: Iterable[str], *, archive: bool) -> None:
    """Media rows for the stored messages with these mids (those already made stay)."""
    now = utcnow()
    rows = [
        row
        for message_id, attachments in media.attachments_of(session, mids)
        for row in rows_for(message_id, attachments, archive=archive, now=now)
    ]
    media.add_many(session, rows)


def create_for_message(session: Session, *, message_id: int, attachments: Any) -> None:
    """Media rows of a message the business sends through the API: the URLs are the
    client's own, kept and redirected to, never downloaded."""
    media.add_many(session, rows_for(message_id, attachments, archive=False, now=utcnow()))


def media_by_message(
    session: Session, message_ids: Iterable[int]
) -> dict[int, dict[int, Mapping[Any, Any]]]:
    """The media rows of these messages (`message_json`'s `media`): by message id, then by
    the attachment's position. One statement."""
    found = media.of_messages(session, list(message_ids))
    return {
        message_id: {position: row._mapping for position, row in rows.items()}
        for message_id, rows in found.items()
    }
