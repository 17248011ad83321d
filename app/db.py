"""Engine and session factory: PostgreSQL in production, an embedded SQLite file by default."""

from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy import exc as sa_exc
from sqlalchemy.orm import Session, sessionmaker

from app.config import Settings

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
    return create_engine(
        url,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_timeout=settings.db_pool_timeout,
        # No ping before each checkout (a round trip per request): a connection found dead is
        # invalidated with the whole pool, and that request answers 503 (Meta retries).
        pool_pre_ping=False,
        connect_args=connect_args,
    )


def _create_sqlite_engine(url: str) -> Engine:
    engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 15})

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
