"""The history sync's work: backfill jobs, gap checks of conversations webhooks pointed at,
and each account's periodic sweep. Run by the sync worker in every process; an account's
Conversations API is called by one process at a time (a lease in `account_sync`), so the
account's budget of calls is shared by nobody."""

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.orm import Session, sessionmaker

from app import metrics
from app.clients.instagram import InstagramClient
from app.clients.instagram_errors import InstagramError
from app.config import Settings
from app.db import DATABASE_UNAVAILABLE
from app.errors import AppError
from app.models import SyncJob, utcnow
from app.repositories import sync as sync_rows
from app.services.background import BackgroundWorker
from app.services.sync.importer import Imported, end_transaction, import_conversation
from app.services.sync.reader import ConversationsReader, ListedConversation, Pacer

logger = logging.getLogger(__name__)

# A process working for an account renews its lease after each conversation; one that dies
# lets go after this long.
LEASE = timedelta(minutes=5)
# Conversations listed per sweep at most (newest activity first); older ones wait a backfill.
SWEEP_MAX_CONVERSATIONS = 500
# A sweep looks back this much further than its last run (clocks differ, pages shift).
SWEEP_OVERLAP = timedelta(minutes=5)
MAX_ERROR_TEXT = 500
# A backfill Meta fails for now (5xx, timeouts, rate limits past the backoff) goes on after this.
RETRY_AFTER_TRANSIENT = timedelta(minutes=1)

Progress = Callable[[SyncJob], None]


class JobNotFoundError(AppError):
    status_code = 404
    code = "sync_job_not_found"


@dataclass(frozen=True)
class SweepReport:
    conversations: int
    gaps_found: int
    gaps_filled: int


class HistorySync:
    """Backfill, checks and sweeps for the accounts `accounts()` names."""

    def __init__(
        self,
        *,
        session_factory: sessionmaker[Session],
        instagram: InstagramClient,
        settings: Settings,
        accounts: Callable[[], list[str]],
    ) -> None:
        self._sessions = session_factory
        self._instagram = instagram
        self._settings = settings
        self._accounts = accounts
        self._pacers: dict[str, Pacer] = {}
        # Told when a backfill is queued (the worker of this process starts on it at once).
        self.on_queued: Callable[[], None] = lambda: None

    def reader(self, account_id: str) -> ConversationsReader:
        pacer = self._pacers.get(account_id)
        if pacer is None:
            pacer = self._pacers[account_id] = Pacer(self._settings.sync_calls_per_second)
        return ConversationsReader(self._instagram, account_id=account_id, pacer=pacer)

    def sessions(self) -> Session:
        """A session of the sync's database (the CLI's own use)."""
        return self._sessions()

    def job(self, job_id: int) -> SyncJob:
        with self._sessions() as session:
            job = sync_rows.get_job(session, job_id)
            if job is None:
                raise JobNotFoundError(f"No sync job {job_id}.")
            session.expunge(job)
            return job

    def follow(self, job_id: int, *, progress: Progress, poll_seconds: float = 1.0) -> SyncJob:
        """Report a job another process runs until it ends."""
        while True:
            job = self.job(job_id)
            progress(job)
            if job.status in ("done", "failed"):
                return job
            time.sleep(poll_seconds)

    # -- backfill -----------------------------------------------------------------------------

    def start_backfill(self, session: Session, *, account_id: str, days: int | None) -> SyncJob:
        """Queue a backfill of the account (all its history, or the last `days` days)."""
        since = utcnow() - timedelta(days=days) if days else None
        job = sync_rows.add_job(session, account_id=account_id, since=since)
        session.commit()
        self.on_queued()
        return job

    def run_job(self, job_id: int, *, progress: Progress | None = None) -> bool:
        """Run (or go on with) a queued backfill; False if another process holds it."""
        with self._sessions() as session:
            job = sync_rows.get_job(session, job_id)
            if job is None:
                raise JobNotFoundError(f"No sync job {job_id}.")
            now = utcnow()
            if not sync_rows.claim_account(session, job.account_id, now=now, lease=LEASE):
                session.rollback()
                return False
            if not sync_rows.claim_job(session, job_id, now=now, lease=LEASE):
                sync_rows.release_account(session, job.account_id)
                session.commit()
                return False
            session.commit()
            session.refresh(job)
            try:
                self._backfill(session, job, progress)
            except DATABASE_UNAVAILABLE:
                raise  # the lease runs out, and a worker goes on once the database is back
            except Exception as error:
                session.rollback()
                self._stopped(job, error)
            finally:
                sync_rows.release_account(session, job.account_id)
                session.commit()
        return True

    def _stopped(self, job: SyncJob, error: Exception) -> None:
        """A backfill that could not go on: Meta failing for now (it goes on after
        RETRY_AFTER_TRANSIENT), or for good (the token, say: it is failed, and says why)."""
        job.error = _describe(error)
        if isinstance(error, InstagramError) and error.transient:
            job.claimed_until = utcnow() + RETRY_AFTER_TRANSIENT
            logger.warning("backfill %s of %s paused: %s", job.id, job.account_id, job.error)
            return
        job.status, job.finished_at = "failed", utcnow()
        logger.warning("backfill %s of %s failed: %s", job.id, job.account_id, job.error)

    def run_next_job(self) -> bool:
        """Run one runnable backfill; False when there is none this process can take."""
        with self._sessions() as session:
            jobs = [job.id for job in sync_rows.runnable_jobs(session, now=utcnow())]
        return any(self.run_job(job_id) for job_id in jobs)

    def _backfill(self, session: Session, job: SyncJob, progress: Progress | None) -> None:
        reader = self.reader(job.account_id)
        while not job.listed:
            self._list_page(session, reader, job)
            _report(progress, job)
        while pending := sync_rows.pending_job_conversations(session, job.id, limit=50):
            for entry in pending:
                listed = ListedConversation(
                    entry.graph_conversation_id, entry.customer_id, entry.updated_time
                )
                try:
                    imported = import_conversation(session, reader, listed, until_known=False)
                except InstagramError as error:
                    # One thread Meta will not give is recorded and skipped, never the run's end.
                    session.rollback()
                    entry.status, entry.error = "failed", _describe(error)
                    job.conversations_failed += 1
                else:
                    entry.status, entry.messages = "done", imported.messages + imported.placeholders
                    job.messages_imported += imported.messages
                    job.placeholders_imported += imported.placeholders
                job.conversations_done += 1
                job.claimed_until = utcnow() + LEASE
                sync_rows.claim_account(session, job.account_id, now=utcnow(), lease=LEASE)
                session.commit()
                _report(progress, job)
        job.status, job.finished_at, job.error = "done", utcnow(), None
        session.commit()
        _report(progress, job)

    def _list_page(self, session: Session, reader: ConversationsReader, job: SyncJob) -> None:
        """One page of the account's conversations into the job; the last marks it listed."""
        cursor = job.list_cursor
        end_transaction(session)
        page = reader.conversations(after=cursor)
        wanted = [
            conversation
            for conversation in page.items
            if job.since is None
            or conversation.updated_time is None
            or conversation.updated_time >= job.since
        ]
        job.conversations_total += sync_rows.add_job_conversations(
            session,
            job.id,
            (
                {
                    "graph_conversation_id": conversation.graph_id,
                    "position": job.conversations_total + number,
                    "customer_id": conversation.customer_id,
                    "updated_time": conversation.updated_time,
                }
                for number, conversation in enumerate(wanted)
            ),
        )
        # Newest activity first: once a page reaches past `since`, the rest is older still.
        job.list_cursor = page.after
        job.listed = page.after is None or len(wanted) < len(page.items)
        job.claimed_until = utcnow() + LEASE
        session.commit()

    # -- gap detection ------------------------------------------------------------------------

    def run_due_checks(self, *, now: datetime | None = None, limit: int = 20) -> int:
        """Check the conversations webhooks named unknown messages of; how many were checked."""
        now = now or utcnow()
        checked = 0
        with self._sessions() as session:
            due = sync_rows.due_checks(session, now=now, limit=limit)
            by_account: dict[str, list[tuple[int, str, str | None]]] = {}
            for conversation in due:
                by_account.setdefault(conversation.account_id, []).append(
                    (conversation.id, conversation.customer_id, conversation.graph_conversation_id)
                )
            session.rollback()
            for account_id, conversations in by_account.items():
                if not sync_rows.claim_account(session, account_id, now=utcnow(), lease=LEASE):
                    session.rollback()
                    continue
                session.commit()
                try:
                    reader = self.reader(account_id)
                    for conversation_id, customer_id, graph_id in conversations:
                        self._check(session, reader, conversation_id, customer_id, graph_id)
                        checked += 1
                finally:
                    sync_rows.release_account(session, account_id)
                    session.commit()
        return checked

    def _check(
        self,
        session: Session,
        reader: ConversationsReader,
        conversation_id: int,
        customer_id: str,
        graph_id: str | None,
    ) -> None:
        end_transaction(session)
        try:
            listed = (
                ListedConversation(graph_id, customer_id, None)
                if graph_id
                else reader.conversation_with(customer_id)
            )
            imported = (
                import_conversation(session, reader, listed, until_known=True)
                if listed is not None
                else Imported()
            )
        except InstagramError as error:
            session.rollback()
            self._record_error(session, reader.account_id, error)
            imported = Imported()
        self._count(session, reader.account_id, imported)
        sync_rows.clear_check(session, conversation_id)
        session.commit()

    def sweep(self, account_id: str, *, now: datetime | None = None) -> SweepReport | None:
        """Compare the account's recently active conversations with what is stored and import
        what is missing; None when another process holds the account."""
        now = now or utcnow()
        with self._sessions() as session:
            if not sync_rows.claim_account(session, account_id, now=now, lease=LEASE):
                session.rollback()
                return None
            state = sync_rows.sync_state(session, account_id)
            last_sweep = state.last_sweep_at or now - timedelta(
                minutes=self._settings.sync_sweep_minutes
            )
            session.commit()
            try:
                report = self._sweep(session, account_id, since=last_sweep - SWEEP_OVERLAP)
                state = sync_rows.sync_state(session, account_id)
                state.last_sweep_at, state.last_error = now, None
            except InstagramError as error:
                session.rollback()
                self._record_error(session, account_id, error)
                report = None
            finally:
                sync_rows.release_account(session, account_id)
                session.commit()
        return report

    def _sweep(self, session: Session, account_id: str, *, since: datetime) -> SweepReport:
        reader = self.reader(account_id)
        total, seen, after = Imported(), 0, None
        while seen < SWEEP_MAX_CONVERSATIONS:
            end_transaction(session)
            page = reader.conversations(after=after)
            for listed in page.items:
                if listed.updated_time is not None and listed.updated_time < since:
                    return self._swept(session, account_id, seen, total)
                seen += 1
                if self._up_to_date(session, account_id, listed):
                    continue
                try:
                    total.add(import_conversation(session, reader, listed, until_known=True))
                except InstagramError as error:
                    session.rollback()
                    logger.warning("sweep of %s skipped a conversation: %s", account_id, error)
                sync_rows.claim_account(session, account_id, now=utcnow(), lease=LEASE)
                session.commit()
            if page.after is None:
                break
            after = page.after
        return self._swept(session, account_id, seen, total)

    def _up_to_date(self, session: Session, account_id: str, listed: ListedConversation) -> bool:
        if listed.customer_id is None or listed.updated_time is None:
            return False
        stored = sync_rows.conversation_of(
            session, account_id=account_id, customer_id=listed.customer_id
        )
        if stored is None:
            return False
        newest = sync_rows.newest_message_at(session, stored.id)
        return newest is not None and newest >= listed.updated_time

    def _swept(self, session: Session, account_id: str, seen: int, total: Imported) -> SweepReport:
        self._count(session, account_id, total)
        return SweepReport(seen, total.gaps_found, total.gaps_filled)

    def sweep_due_accounts(self, *, now: datetime | None = None) -> int:
        """Sweep each account whose last sweep is SYNC_SWEEP_MINUTES old; how many were."""
        now = now or utcnow()
        interval = timedelta(minutes=self._settings.sync_sweep_minutes)
        swept = 0
        for account_id in self._accounts():
            with self._sessions() as session:
                state = sync_rows.sync_state(session, account_id)
                last = state.last_sweep_at
                if last is None:
                    # An account seen for the first time: its sweeps start from now (what
                    # came before is a backfill's job); after a restart they go on from the
                    # last one, so a downtime's gaps are found.
                    state.last_sweep_at = last = now
                session.commit()
            if now - last >= interval:
                swept += self.sweep(account_id, now=now) is not None
        return swept

    def _count(self, session: Session, account_id: str, imported: Imported) -> None:
        sync_rows.count_gaps(
            session, account_id, found=imported.gaps_found, filled=imported.gaps_filled
        )
        if imported.gaps_found:
            metrics.HISTORY_GAPS.labels(account=account_id, outcome="found").inc(
                imported.gaps_found
            )
        if imported.gaps_filled:
            metrics.HISTORY_GAPS.labels(account=account_id, outcome="filled").inc(
                imported.gaps_filled
            )

    def _record_error(self, session: Session, account_id: str, error: Exception) -> None:
        sync_rows.sync_state(session, account_id).last_error = _describe(error)
        logger.warning("history sync of %s: %s", account_id, _describe(error))


class SyncWorker(BackgroundWorker):
    """Backfill jobs first, then due gap checks, then due sweeps; idle when none is due."""

    def __init__(self, sync: HistorySync, *, idle_seconds: float = 5.0) -> None:
        self.sync = sync
        super().__init__(self.run_once, name="history-sync", idle_seconds=idle_seconds)

    def run_once(self) -> bool:
        if self.sync.run_next_job():
            return True
        if self.sync.run_due_checks():
            return True
        self.sync.sweep_due_accounts()
        return False


def _report(progress: Progress | None, job: SyncJob) -> None:
    if progress is not None:
        progress(job)


def _describe(error: Exception) -> str:
    text = error.message if isinstance(error, AppError) else f"{type(error).__name__}: {error}"
    return text if len(text) <= MAX_ERROR_TEXT else text[:MAX_ERROR_TEXT] + "..."
