"""Backfills as the API and the CLI see them: start one, follow it."""

from collections.abc import Callable

from sqlalchemy.orm import Session

from app.errors import AppError
from app.models import SyncJob
from app.repositories import sync as sync_rows
from app.schemas.v1.sync import SyncJobRead
from app.services.sync.runner import HistorySync, JobNotFoundError

RECENT_JOBS = 20


class AccountNotFoundError(AppError):
    status_code = 404
    code = "account_not_found"


class SyncService:
    def __init__(
        self, *, session: Session, sync: HistorySync, accounts: Callable[[], list[str]]
    ) -> None:
        self._session = session
        self._sync = sync
        self._accounts = accounts

    def start(self, *, account_id: str, days: int | None) -> SyncJobRead:
        self._check_account(account_id)
        job = self._sync.start_backfill(self._session, account_id=account_id, days=days)
        return job_read(job)

    def jobs(self, *, account_id: str) -> list[SyncJobRead]:
        self._check_account(account_id)
        jobs = sync_rows.jobs_of(self._session, account_id=account_id, limit=RECENT_JOBS)
        return [job_read(job) for job in jobs]

    def job(self, *, account_id: str, job_id: int) -> SyncJobRead:
        job = sync_rows.get_job(self._session, job_id)
        if job is None or job.account_id != account_id:
            raise JobNotFoundError(f"No sync job {job_id} for account {account_id}.")
        return job_read(job)

    def _check_account(self, account_id: str) -> None:
        if account_id not in self._accounts():
            raise AccountNotFoundError(f"No account {account_id} is configured.")


def job_read(job: SyncJob) -> SyncJobRead:
    return SyncJobRead(
        id=str(job.id),
        account_id=job.account_id,
        status=job.status,  # type: ignore[arg-type]
        since=job.since,
        listed=job.listed,
        conversations_total=job.conversations_total,
        conversations_done=job.conversations_done,
        conversations_failed=job.conversations_failed,
        messages_imported=job.messages_imported,
        placeholders_imported=job.placeholders_imported,
        error=job.error,
        created_at=job.created_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
    )
