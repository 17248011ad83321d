"""The media archive's background worker (MEDIA_ARCHIVE=local|s3), never in a webhook
request: each round first purges the bytes of unsent (or removed) media, then downloads the
pending ones it leases (SKIP LOCKED: processes share the queue, never a file).

A download is streamed into a spool file with its size capped while reading, its type checked
by its bytes against the allow-list, then kept under its content-addressed key. A refusal is
final and says why (`too_large`, `unsupported`, `expired`, `failed`: the URL stays); a
transient failure (timeout, 5xx, 429) is retried after 30 s, 2 min, 10 min and 1 h, then
`failed`.
"""

import logging
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Row
from sqlalchemy.orm import Session

from app.clients.cdn import CdnClient, DownloadFailed, DownloadRefused
from app.config import Settings
from app.models import utcnow
from app.repositories import media
from app.services.background import BackgroundWorker
from app.services.media.sniff import EXTENSIONS, sniff
from app.services.media.storage import MediaStore, storage_key

logger = logging.getLogger(__name__)

RETRY_DELAYS = (
    timedelta(seconds=30),
    timedelta(minutes=2),
    timedelta(minutes=10),
    timedelta(hours=1),
)
CLAIM = timedelta(minutes=5)  # longer than a 25 MiB download takes
BATCH = 4
PURGE_BATCH = 100
MAX_ERROR_TEXT = 300


class MediaDownloader:
    """One round of the archive's work: purges, then a few downloads."""

    def __init__(
        self,
        *,
        session_factory: Callable[[], Session],
        store: MediaStore,
        cdn: CdnClient,
        settings: Settings,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.session_factory = session_factory
        self.store = store
        self.cdn = cdn
        self.max_bytes = settings.media_max_bytes
        self.clock = clock

    def run_once(self) -> bool:
        """Purge what must go, download what is due; whether there was work (more may wait)."""
        purged = self.purge()
        with self.session_factory() as session:
            now = self.clock()
            claimed = media.claim_due(session, now=now, claim_until=now + CLAIM, limit=BATCH)
            jobs = [(row.id, row.source_url, row.attempts) for row in claimed]
            session.commit()
        for media_id, url, attempts in jobs:
            self._download(media_id, url=url, attempts=attempts)
        return bool(jobs) or purged > 0

    def purge(self) -> int:
        """Delete the bytes of unsent and removed media (at once: the next round); how many."""
        with self.session_factory() as session:
            doomed = media.to_purge(session, limit=PURGE_BATCH)
            release_bytes(session, self.store, doomed)
            session.commit()
        return len(doomed)

    def _download(self, media_id: int, *, url: str | None, attempts: int) -> None:
        try:
            outcome = self._fetch_and_keep(url)
        except DownloadRefused as refused:
            logger.info("media %s not archived (%s): %s", media_id, refused.state, refused.reason)
            outcome = {"state": refused.state, "error": refused.reason, "due_at": None}
        except Exception as exc:  # DownloadFailed, the store, anything: retried, then failed
            outcome = self._retry_or_fail(media_id, attempts=attempts, error=exc)
        with self.session_factory() as session:
            recorded = media.finish(session, media_id=media_id, **outcome)
            key = outcome.get("storage_key")
            if not recorded and key and not media.keys_still_used(session, [key], besides=[]):
                # Unsent while it downloaded: the bytes just stored go at once.
                self.store.delete(key)
            session.commit()

    def _fetch_and_keep(self, url: str | None) -> dict[str, Any]:
        if url is None:
            raise DownloadRefused("unsupported", "no URL")
        spooled = self.store.spool()
        try:
            with spooled:
                downloaded = self.cdn.download(url, into=spooled, max_bytes=self.max_bytes)
                content_type = sniff(downloaded.head)
                if content_type is None:
                    raise DownloadRefused(
                        "unsupported",
                        f"not an allowed media type (the CDN said {downloaded.content_type})",
                    )
                key = storage_key(sha256=downloaded.sha256, extension=EXTENSIONS[content_type])
                self.store.put(key, spooled, content_type=content_type)
        finally:
            Path(spooled.name).unlink(missing_ok=True)
        return {
            "state": "stored",
            "storage_key": key,
            "content_type": content_type,
            "size_bytes": downloaded.size,
            "sha256": downloaded.sha256,
            "stored_at": self.clock(),
            "due_at": None,
            "error": None,
        }

    def _retry_or_fail(self, media_id: int, *, attempts: int, error: Exception) -> dict[str, Any]:
        text = _describe(error)
        if not isinstance(error, DownloadFailed):
            logger.exception("media %s: download failed", media_id, exc_info=error)
        if attempts >= len(RETRY_DELAYS):
            logger.warning(
                "media %s not archived after %d attempts: %s", media_id, attempts + 1, text
            )
            return {"state": "failed", "error": text, "due_at": None, "attempts": attempts + 1}
        return {
            "state": "pending",
            "error": text,
            "due_at": self.clock() + RETRY_DELAYS[attempts],
            "attempts": attempts + 1,
        }


def release_bytes(session: Session, store: MediaStore, rows: Sequence[Row[Any]]) -> None:
    """Delete the bytes of these `(id, storage_key)` media, unless another media row still
    keeps the same file (keys are content-addressed), and mark them as holding none."""
    ids = [row.id for row in rows]
    keys = {row.storage_key for row in rows if row.storage_key}
    shared = media.keys_still_used(session, keys, besides=ids)
    for key in keys - shared:
        store.delete(key)
    media.forget_bytes(session, ids)


def delete_media_of_account(session: Session, account_id: str) -> int:
    """An account is removed: its media are never served again and their bytes are purged
    by the download worker's next round (or, when media is not archived, there are none).
    Call it in the removal's transaction; the caller commits. How many media."""
    return media.mark_deleted_of_account(session, account_id, at=utcnow())


class MediaWorker(BackgroundWorker):
    """The thread running `MediaDownloader` rounds (every `idle_seconds` when idle)."""

    def __init__(self, downloader: MediaDownloader, *, idle_seconds: float) -> None:
        self.downloader = downloader
        super().__init__(downloader.run_once, name="media-downloader", idle_seconds=idle_seconds)


def _describe(error: Exception) -> str:
    text = str(error) or type(error).__name__
    return text[:MAX_ERROR_TEXT]
