"""What `GET /api/v1/media/{id}` answers.

- Archived bytes (`stored`): the file (local) or a presigned URL of hours (S3).
- Being archived (`pending`): 202 with `Retry-After`.
- Otherwise the live CDN URL, as Meta's policy wants: a HEAD tells whether it still works;
  when it does not (or is known expired) and the message is among its conversation's 20
  newest, Meta is asked for the message again and the fresh URL is kept and redirected to;
  else 410 `media_expired`.
"""

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Row
from sqlalchemy.orm import Session

from app.clients.cdn import CdnClient
from app.clients.instagram import InstagramClient
from app.clients.instagram_errors import InstagramError
from app.errors import GoneError, NotFoundError
from app.models import Media, utcnow
from app.repositories import media, messages
from app.services.media.attachments import url_of
from app.services.media.storage import MediaStore

logger = logging.getLogger(__name__)

# Meta gives content (and media URLs) for a conversation's 20 newest messages only.
REFRESHABLE_NEWEST = 20
RETRY_AFTER_SECONDS = 5


@dataclass(frozen=True)
class Redirect:
    url: str


@dataclass(frozen=True)
class LocalFile:
    path: Path
    content_type: str


@dataclass(frozen=True)
class Pending:
    retry_after: int


Served = Redirect | LocalFile | Pending


class MediaService:
    """Serve one attachment by its media id."""

    def __init__(
        self,
        *,
        session: Session,
        cdn: CdnClient,
        instagram: InstagramClient,
        store: MediaStore | None,
    ) -> None:
        self.session = session
        self.cdn = cdn
        self.instagram = instagram
        self.store = store

    def get(self, media_id: str) -> Served:
        """Where the attachment's bytes are (see the module's docstring)."""
        found = media.with_message(self.session, int(media_id)) if _is_row_id(media_id) else None
        if found is None:
            raise NotFoundError(f"No media {media_id}.", code="media_not_found")
        row: Media = found.Media
        self.session.commit()  # no transaction held while the CDN or Meta answers
        if row.deleted_at is not None or row.message_id is None:
            raise GoneError(
                "This attachment was deleted: its message was unsent (or its account removed).",
                code="media_deleted",
            )
        if self.store is not None and row.storage_key and row.state == "stored":
            archived = self._archived(row)
            if archived is not None:
                return archived
        if self.store is not None and row.state == "pending":
            return Pending(retry_after=RETRY_AFTER_SECONDS)
        if row.source_url is None:
            raise NotFoundError(
                f"This {row.type} attachment has no URL to serve.", code="media_unavailable"
            )
        if row.state != "expired" and self.cdn.check(row.source_url) != "dead":
            return Redirect(row.source_url)
        fresh = self._refreshed(row, found)
        if fresh is None:
            media.set_source(
                self.session, media_id=row.id, source_url=row.source_url, state="expired"
            )
            self.session.commit()
            raise GoneError(
                "The attachment's URL has expired and Meta no longer gives a fresh one.",
                code="media_expired",
            )
        return Redirect(fresh)

    def _archived(self, row: Media) -> Served | None:
        """The archived bytes; None when the file is missing from MEDIA_DIR (deleted by hand):
        the live URL serves instead."""
        assert self.store is not None
        assert row.storage_key is not None
        content_type = row.content_type or "application/octet-stream"
        where = self.store.location(row.storage_key, content_type=content_type)
        if not isinstance(where, Path):
            return Redirect(where)
        if not where.is_file():
            logger.warning("media %s: archived file %s is missing", row.id, row.storage_key)
            return None
        return LocalFile(where, content_type)

    def _refreshed(self, row: Media, found: Row[Any]) -> str | None:
        """A fresh URL from the Conversations API, kept; None when Meta no longer gives one
        (the message is past the 20 newest, or gone)."""
        newer = messages.newer_in_conversation(
            self.session, conversation_id=found.conversation_id, sent_at=found.sent_at
        )
        self.session.commit()
        if found.mid is None or newer >= REFRESHABLE_NEWEST:
            return None
        try:
            message = self.instagram.get_message(found.mid)
        except InstagramError as error:
            if error.transient:
                raise  # 429/503: the client may try again
            logger.info("media %s: Meta gives no fresh URL: %s", row.id, error.code)
            return None
        fresh = fresh_url(message, position=row.position)
        if fresh is None:
            return None
        rearchive = self.store is not None and row.state in ("expired", "failed")
        media.set_source(
            self.session,
            media_id=row.id,
            source_url=fresh,
            state="pending" if rearchive else ("remote" if row.state == "expired" else row.state),
            due_at=utcnow(),
        )
        self.session.commit()
        return fresh


def _is_row_id(text: str) -> bool:
    """Whether `text` can be a media id: ASCII digits within a BIGINT (anything else would
    make the database refuse the query: 404 instead)."""
    return text.isascii() and text.isdigit() and int(text) < 2**63


def fresh_url(message: dict[str, Any], *, position: int) -> str | None:
    """The URL of attachment `position` in a Graph message node: `attachments.data[]` items
    carry `image_data.url`, `video_data.url` or `file_url` (or a webhook-like `payload.url`)."""
    attachments = message.get("attachments")
    data = attachments.get("data") if isinstance(attachments, dict) else attachments
    if not isinstance(data, list) or not 0 <= position < len(data):
        return None
    item = data[position]
    if not isinstance(item, dict):
        return None
    for nested in ("image_data", "video_data", "audio_data"):
        value = item.get(nested)
        if isinstance(value, dict) and isinstance(value.get("url"), str):
            return str(value["url"])
    if isinstance(item.get("file_url"), str):
        return str(item["file_url"])
    return url_of(item)
