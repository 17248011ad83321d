"""SQL for the history sync: backfill jobs and their conversations, the gap checks webhooks
schedule, and each account's sweep clock, lease and gap counts."""

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from app.models import AccountSync, Conversation, Message, SyncJob, SyncJobConversation
from app.repositories import messages
from app.repositories.base import upsert_insert

# -- jobs -------------------------------------------------------------------------------------


def add_job(session: Session, *, account_id: str, since: datetime | None) -> SyncJob:
    job = SyncJob(account_id=account_id, status="queued", since=since)
    session.add(job)
    session.flush()
    return job


def get_job(session: Session, job_id: int) -> SyncJob | None:
    return session.get(SyncJob, job_id)


def jobs_of(session: Session, *, account_id: str, limit: int) -> Sequence[SyncJob]:
    return session.scalars(
        select(SyncJob)
        .where(SyncJob.account_id == account_id)
        .order_by(SyncJob.id.desc())
        .limit(limit)
    ).all()


def runnable_jobs(session: Session, *, now: datetime, limit: int = 10) -> Sequence[SyncJob]:
    """Queued jobs, and running ones whose lease ran out (their process died), oldest first."""
    return session.scalars(
        select(SyncJob)
        .where(
            or_(
                SyncJob.status == "queued",
                (SyncJob.status == "running") & (SyncJob.claimed_until < now),
            )
        )
        .order_by(SyncJob.id)
        .limit(limit)
    ).all()


def claim_job(session: Session, job_id: int, *, now: datetime, lease: timedelta) -> bool:
    """Take the job unless another process holds it: at most one runs it at a time."""
    claimed = session.execute(
        update(SyncJob)
        .where(
            SyncJob.id == job_id,
            or_(
                SyncJob.status == "queued",
                (SyncJob.status == "running") & (SyncJob.claimed_until < now),
            ),
        )
        .values(
            status="running",
            claimed_until=now + lease,
            started_at=func.coalesce(SyncJob.started_at, now),
        )
        .execution_options(synchronize_session=False)
    )
    return bool(claimed.rowcount)  # type: ignore[attr-defined]


def add_job_conversations(session: Session, job_id: int, rows: Iterable[dict[str, Any]]) -> int:
    """Listed conversations of a job (each once, whatever a resumed listing lists again);
    how many were new."""
    rows = [{"job_id": job_id, "status": "pending", **row} for row in rows]
    if not rows:
        return 0
    insert = upsert_insert(session, SyncJobConversation.__table__)
    result = session.execute(
        insert.values(rows)
        .on_conflict_do_nothing(index_elements=["job_id", "graph_conversation_id"])
        .returning(SyncJobConversation.graph_conversation_id)
    )
    return len(result.all())


def pending_job_conversations(
    session: Session, job_id: int, *, limit: int
) -> Sequence[SyncJobConversation]:
    return session.scalars(
        select(SyncJobConversation)
        .where(SyncJobConversation.job_id == job_id, SyncJobConversation.status == "pending")
        .order_by(SyncJobConversation.position)
        .limit(limit)
    ).all()


# -- gap checks -------------------------------------------------------------------------------


def schedule_checks(
    session: Session, references: Mapping[int, set[str]], *, due_at: datetime
) -> int:
    """Webhook events named these mids (by conversation id): a conversation where one of them
    is unknown is checked against Meta's list at `due_at` (or sooner, if already due)."""
    mids = {mid for named in references.values() for mid in named}
    if not mids:
        return 0
    known = messages.known_mids(session, sorted(mids))
    conversation_ids = [id for id, named in references.items() if named - known]
    if not conversation_ids:
        return 0
    result = session.execute(
        update(Conversation)
        .where(
            Conversation.id.in_(conversation_ids),
            or_(Conversation.check_due_at.is_(None), Conversation.check_due_at > due_at),
        )
        .values(check_due_at=due_at)
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def due_checks(session: Session, *, now: datetime, limit: int) -> Sequence[Conversation]:
    return session.scalars(
        select(Conversation)
        .where(Conversation.check_due_at <= now)
        .order_by(Conversation.check_due_at)
        .limit(limit)
    ).all()


def newest_message_at(session: Session, conversation_id: int) -> datetime | None:
    value: datetime | None = session.scalar(
        select(func.max(Message.sent_at)).where(
            Message.conversation_id == conversation_id, Message.is_placeholder.is_(False)
        )
    )
    return value


def conversation_of(session: Session, *, account_id: str, customer_id: str) -> Conversation | None:
    return session.scalar(
        select(Conversation).where(
            Conversation.account_id == account_id, Conversation.customer_id == customer_id
        )
    )


# -- account sync state -----------------------------------------------------------------------


def sync_state(session: Session, account_id: str) -> AccountSync:
    """The account's row, created on first use."""
    state = session.get(AccountSync, account_id)
    if state is None:
        insert = upsert_insert(session, AccountSync.__table__)
        session.execute(
            insert.values(account_id=account_id).on_conflict_do_nothing(
                index_elements=["account_id"]
            )
        )
        state = session.get(AccountSync, account_id)
        assert state is not None
    return state


def all_sync_states(session: Session) -> Sequence[AccountSync]:
    return session.scalars(select(AccountSync).order_by(AccountSync.account_id)).all()


def claim_account(session: Session, account_id: str, *, now: datetime, lease: timedelta) -> bool:
    """Hold the account's Conversations API budget: one process at a time calls it."""
    sync_state(session, account_id)
    claimed = session.execute(
        update(AccountSync)
        .where(
            AccountSync.account_id == account_id,
            or_(AccountSync.claimed_until.is_(None), AccountSync.claimed_until < now),
        )
        .values(claimed_until=now + lease)
        .execution_options(synchronize_session=False)
    )
    return bool(claimed.rowcount)  # type: ignore[attr-defined]


def release_account(session: Session, account_id: str) -> None:
    session.execute(
        update(AccountSync)
        .where(AccountSync.account_id == account_id)
        .values(claimed_until=None)
        .execution_options(synchronize_session=False)
    )


def count_gaps(session: Session, account_id: str, *, found: int, filled: int) -> None:
    if not found and not filled:
        return
    sync_state(session, account_id)
    session.execute(
        update(AccountSync)
        .where(AccountSync.account_id == account_id)
        .values(
            gaps_found=AccountSync.gaps_found + found,
            gaps_filled=AccountSync.gaps_filled + filled,
        )
        .execution_options(synchronize_session=False)
    )


def clear_check(session: Session, conversation_id: int) -> None:
    session.execute(
        update(Conversation)
        .where(Conversation.id == conversation_id)
        .values(check_due_at=None)
        .execution_options(synchronize_session=False)
    )


def running_jobs_by_account(session: Session) -> dict[str, int]:
    rows = session.execute(
        select(SyncJob.account_id, func.count())
        .where(SyncJob.status.in_(("queued", "running")))
        .group_by(SyncJob.account_id)
    ).all()
    return {account_id: count for account_id, count in rows}
