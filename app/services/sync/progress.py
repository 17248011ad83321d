"""The progress line `fab backfill` prints: a bar, the counts and the rate."""

import sys
import time
from typing import TextIO

from app.models import SyncJob

BAR_WIDTH = 24
# Without a terminal (a log, CI), a line at most this often instead of one redrawn in place.
PLAIN_INTERVAL_SECONDS = 5.0


class ProgressLine:
    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream or sys.stdout
        self._tty = self._stream.isatty()
        self._started = time.monotonic()
        self._last_plain = 0.0

    def __call__(self, job: SyncJob) -> None:
        finished = job.status in ("done", "failed")
        now = time.monotonic()
        if not self._tty and not finished and now - self._last_plain < PLAIN_INTERVAL_SECONDS:
            return
        self._last_plain = now
        line = render(job, elapsed=now - self._started)
        if self._tty:
            self._stream.write("\r" + line + ("\n" if finished else ""))
        else:
            self._stream.write(line + "\n")
        self._stream.flush()


def render(job: SyncJob, *, elapsed: float) -> str:
    total = job.conversations_total
    done = job.conversations_done
    share = done / total if total else 0.0
    filled = round(share * BAR_WIDTH)
    bar = "#" * filled + "-" * (BAR_WIDTH - filled)
    stored = job.messages_imported + job.placeholders_imported
    rate = stored / elapsed if elapsed > 0 else 0.0
    counted = f"{done}/{total}{'' if job.listed else '+'}"
    return (
        f"[{bar}] {counted} conversations · {job.messages_imported} messages · "
        f"{job.placeholders_imported} placeholders · {job.conversations_failed} failed · "
        f"{rate:.1f} messages/s · {job.status}"
    )
