"""Readiness (database reachable, schema at head) and the operational status around it: the
access token, the last webhook received and the background backlog (`/ready`, `/metrics`)."""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from pathlib import Path

from alembic.script import ScriptDirectory
from sqlalchemy import Engine, text
from sqlalchemy import exc as sa_exc
from sqlalchemy.orm import Session, sessionmaker

from app.clients.graph_versions import VersionStatus, version_status
from app.db import DATABASE_UNAVAILABLE
from app.metrics import StateSample
from app.models import utcnow
from app.repositories import deliveries, endpoints, event_deliveries, media, users
from app.services.media.storage import MediaStore
from app.services.sync.status import AccountHistory, history_status
from app.services.tokens import TokenStatus, TokenStore

MIGRATIONS_DIR = Path(__file__).resolve().parents[2] / "alembic"


@lru_cache
def migration_heads() -> frozenset[str]:
    """The head revision(s) of the migrations shipped with this code."""
    return frozenset(ScriptDirectory(str(MIGRATIONS_DIR)).get_heads())


@dataclass(frozen=True)
class Readiness:
    ready: bool  # the database answers and its schema is at head
    database: str
    schema: str
    schema_version: str | None  # the revision(s) the database is at


def readiness(engine: Engine) -> Readiness:
    """Is the database reachable, and is its schema at the newest migration?"""
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
            try:
                revisions = set(
                    connection.execute(text("SELECT version_num FROM alembic_version")).scalars()
                )
            except sa_exc.DBAPIError:
                # Any statement error here means no alembic_version table: never migrated.
                revisions = set()
    except DATABASE_UNAVAILABLE as exc:
        cause = getattr(exc, "orig", None) or exc
        return Readiness(
            ready=False,
            database=f"unreachable ({type(cause).__name__})",
            schema="unknown",
            schema_version=None,
        )
    heads = migration_heads()
    found = ", ".join(sorted(revisions)) or None
    if revisions == set(heads):
        schema = "at head"
    elif not revisions:
        schema = "not migrated: run `fab migrate`"
    else:
        schema = f"at {found}, expected {', '.join(sorted(heads))}: run `fab migrate`"
    return Readiness(
        ready=revisions == set(heads), database="ok", schema=schema, schema_version=found
    )


@dataclass(frozen=True)
class StatusReport:
    """Readiness, plus what an operator wants to see next to it."""

    readiness: Readiness
    token: TokenStatus
    graph_version: VersionStatus
    last_webhook_at: datetime | None = None
    profiles_due: int | None = None
    failed_deliveries: int | None = None
    history: list[AccountHistory] | None = None
    # Webhook endpoints: the disabled ones (id, reason, since), and pending deliveries by id.
    disabled_endpoints: list[dict[str, object]] | None = None
    event_backlog: dict[str, int] | None = None
    # With MEDIA_ARCHIVE on: the store (`ok` or its problem) and the downloads waiting.
    media: dict[str, object] | None = None

    def metrics_sample(self) -> StateSample:
        token = self.token
        return StateSample(
            database_up=self.readiness.database == "ok",
            schema_at_head=self.readiness.ready,
            token_days_left=token.days_left,
            token_invalid=token.state == "invalid" if token.state != "unknown" else None,
            profiles_due=self.profiles_due,
            failed_deliveries=self.failed_deliveries,
            event_backlog=self.event_backlog,
            last_webhook_timestamp=self.last_webhook_at.timestamp()
            if self.last_webhook_at
            else None,
            media_pending=_int(self.media.get("pending")) if self.media else None,
        )


def _int(value: object) -> int | None:
    return value if isinstance(value, int) else None


class StatusReporter:
    """Builds the `StatusReport` of one app (its engine, sessions and token store)."""

    def __init__(
        self,
        *,
        engine: Engine,
        session_factory: sessionmaker[Session],
        tokens: TokenStore,
        graph_api_version: str,
        media_store: MediaStore | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.media_store = media_store
        self.engine = engine
        self.session_factory = session_factory
        self.tokens = tokens
        self.graph_api_version = graph_api_version
        self.clock = clock

    def readiness(self) -> Readiness:
        """Only whether the service can serve (what an unauthenticated probe is told)."""
        return readiness(self.engine)

    def report(self) -> StatusReport:
        """Readiness first; the rest only from a database at head (else it is unknown)."""
        ready = readiness(self.engine)
        version = version_status(self.graph_api_version, today=self.clock().date())
        if self.tokens.configured is None:
            unknown = self.tokens.status()
        else:
            why = "the database is unreachable" if ready.database != "ok" else "schema not at head"
            unknown = TokenStatus(state="unknown", detail=f"unknown: {why}")
        if not ready.ready:
            return StatusReport(readiness=ready, token=unknown, graph_version=version)
        try:
            with self.session_factory() as session:
                last_webhook_at = deliveries.last_received_at(session)
                failed = deliveries.count_failed(session)
                due = users.backlog(session, now=self.clock())
                history = history_status(session)
                disabled = [
                    {"id": row.id, "reason": row.disabled_reason, "since": row.disabled_at}
                    for row in endpoints.disabled(session)
                ]
                event_backlog = event_deliveries.backlog(session)
                media_pending = media.pending_count(session) if self.media_store else None
                session.commit()
            token = self.tokens.status()
        except DATABASE_UNAVAILABLE:
            # The database went away between the checks: what it would have said is unknown.
            return StatusReport(readiness=ready, token=unknown, graph_version=version)
        return StatusReport(
            readiness=ready,
            token=token,
            graph_version=version,
            last_webhook_at=last_webhook_at,
            profiles_due=due,
            failed_deliveries=failed,
            history=history,
            disabled_endpoints=disabled,
            event_backlog=event_backlog,
            media=self._media(pending=media_pending),
        )

    def _media(self, *, pending: int | None) -> dict[str, object] | None:
        """The archive's store and backlog; None when media is not archived."""
        if self.media_store is None:
            return None
        problem = self.media_store.problem()
        return {"archive": self.media_store.name, "store": problem or "ok", "pending": pending}
