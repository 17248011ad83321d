"""Engine and session factory: PostgreSQL in production, an embedded SQLite file by default."""

import select
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy import exc as sa_exc
from sqlalchemy.orm import Session, sessionmaker

from app.config import Settings
from app.models import UTC_SESSIONS

# The database itself is away (down, restarting, unreachable, or no pooled connection free
# in time), as opposed to a statement it refused. Callers answer 503 or retry later.
DATABASE_UNAVAILABLE: tuple[type[Exception], ...] = (
    sa_exc.OperationalError,
    sa_exc.InterfaceError,
    sa_exc.TimeoutError,
)


def is_database_unavailable(exc: BaseException) -> bool:
    """Whether `exc` says the database is away (see DATABASE_UNAVAILABLE), not the statement."""
    if isinstance(exc, DATABASE_UNAVAILABLE):
        return True
    return isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated


def create_db_engine(settings: Settings) -> Engine:
    """Build the engine for the configured database (PostgreSQL: pooled, see DB_POOL_*)."""
    url = settings.sqlalchemy_url
    if url.startswith("sqlite"):
        return _create_sqlite_engine(url)
    connect_args: dict[str, Any] = {}
    if url.startswith("postgresql"):
        connect_args["connect_timeout"] = settings.db_connect_timeout
    engine = create_engine(
        url,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_timeout=settings.db_pool_timeout,
        # No ping before each checkout (a round trip per request): a connection the server
        # closed is found by looking at its socket (below), and the whole pool is replaced.
        pool_pre_ping=False,
        connect_args=connect_args,
        # Statement parameters are message texts and ids: never in an error's text (or a log).
        hide_parameters=True,
    )
    if url.startswith("postgresql"):
        event.listen(engine, "checkout", _replace_if_closed_by_server)
        event.listen(engine, "connect", _utc_session)
        setattr(engine.dialect, UTC_SESSIONS, True)
    return engine


def _utc_session(dbapi_connection: Any, _: Any) -> None:
    """Every connection speaks UTC, whatever the server's TimeZone: psycopg2 then returns
    aware UTC datetimes as they are (UTCDateTime has nothing left to convert)."""
    with dbapi_connection.cursor() as cursor:
        cursor.execute("SET TIME ZONE 'UTC'")
    dbapi_connection.commit()


def _replace_if_closed_by_server(dbapi_connection: Any, record: Any, proxy: Any) -> None:
    """Check a pooled connection before it serves a request, without a round trip.

    An idle connection has nothing to read. When the server restarted (or ended the session),
    it has already said so on the socket (its termination notice, or the closed socket itself):
    then this connection and every pooled one opened before it are replaced, and the request
    gets a fresh connection instead of an error.
    """
    poller = select.poll()  # not select(): it cannot watch descriptors past 1023
    try:
        poller.register(dbapi_connection.fileno(), select.POLLIN)
        closed = bool(poller.poll(0))  # readable, hung up or in error
    except (OSError, ValueError):
        closed = True  # psycopg2 already knows the socket is gone
    if closed:
        raise sa_exc.InvalidatePoolError("the server closed this pooled connection")


def _create_sqlite_engine(url: str) -> Engine:
    engine = create_engine(
        url, connect_args={"check_same_thread": False, "timeout": 15}, hide_parameters=True
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _: Any) -> None:
        # Let SQLAlchemy, not pysqlite, issue BEGIN: pysqlite's own transaction handling
        # breaks SAVEPOINT, which per-event isolation of webhook deliveries relies on.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        # IMMEDIATE takes the write lock up front, so two writers queue on busy_timeout
        # instead of one failing with "database is locked" when it upgrades its lock.
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def create_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=engine, expire_on_commit=False)
