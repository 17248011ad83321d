"""The bench's PostgreSQL database: created if missing, migrated, emptied between scenarios and
preloaded with plain SQL (never through HTTP: a million messages take seconds this way)."""

import time
from collections.abc import Iterable
from dataclasses import dataclass

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, inspect, make_url, text

from app.models import Base
from bench.processes import BenchError
from bench.stack import ACCOUNT_ID, REPO_ROOT

DEFAULT_DATABASE_URL = "postgresql+psycopg2://postgres@127.0.0.1:5432/insta_bench"


def ensure_database(url: str) -> None:
    """Create the database if the server does not have it yet."""
    target = make_url(url)
    if not target.drivername.startswith("postgresql"):
        raise BenchError(f"the bench needs PostgreSQL, not {target.drivername}")
    name = target.database
    admin = create_engine(target.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            exists = connection.scalar(
                text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": name}
            )
            if not exists:
                connection.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as error:
        raise BenchError(
            f"cannot reach PostgreSQL at {target.render_as_string(hide_password=True)}: "
            f"{error.__class__.__name__}: {str(error).strip().splitlines()[0]} "
            "(set BENCH_DATABASE_URL)"
        ) from None
    finally:
        admin.dispose()


def migrate(url: str) -> None:
    """alembic upgrade head, as `fab migrate` does."""
    config = Config(str(REPO_ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(REPO_ROOT / "alembic"))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    config.attributes["configure_logger"] = False
    command.upgrade(config, "head")


def server_version(engine: Engine) -> str:
    with engine.connect() as connection:
        return str(connection.scalar(text("SHOW server_version")))


def truncate(engine: Engine) -> None:
    """Empty the service's tables (only those: the database may hold others)."""
    existing = set(inspect(engine).get_table_names())
    names = [table.name for table in Base.metadata.sorted_tables if table.name in existing]
    quoted = ", ".join(f'"{name}"' for name in names)
    with engine.begin() as connection:
        connection.execute(text(f"TRUNCATE {quoted} RESTART IDENTITY CASCADE"))


def count(engine: Engine, sql: str, **parameters: object) -> int:
    with engine.connect() as connection:
        return int(connection.scalar(text(sql), parameters) or 0)


def add_accounts(engine: Engine, account_ids: Iterable[str]) -> None:
    """Business accounts the service serves (no token: intake needs none)."""
    rows = [{"id": account_id} for account_id in account_ids]
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO accounts (id, status, expiry_assumed, created_at, updated_at)"
                " VALUES (:id, 'active', true, now(), now()) ON CONFLICT (id) DO NOTHING"
            ),
            rows,
        )


def add_profiles(engine: Engine, users: Iterable[tuple[str, str]]) -> None:
    """Cached, fresh profiles (id, username): reads find them, nothing calls the Graph API."""
    rows = [{"id": user_id, "username": username} for user_id, username in users]
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO users (id, username, name, profile_status, fetched_at,"
                " profile_due_at, profile_attempts, created_at, updated_at)"
                " VALUES (:id, :username, :username, 'ok', now(), now() + interval '1 day',"
                " 0, now(), now())"
                " ON CONFLICT (id) DO NOTHING"
            ),
            rows,
        )


@dataclass(frozen=True)
class Preload:
    """How long a preload took, for the output."""

    messages: int
    seconds: float


def add_conversation(
    engine: Engine, *, customer_id: str, messages: int, vacuum: bool = True
) -> Preload:
    """A conversation whose customer wrote just now, with `messages` messages, alternately
    the customer's and the business's, one second apart and ending now."""
    started = time.monotonic()
    with engine.begin() as connection:
        conversation_id = connection.scalar(
            text(
                "INSERT INTO conversations (account_id, customer_id, last_message_at,"
                " last_inbound_at, created_at, updated_at)"
                " VALUES (:account, :customer, now(), now(), now(), now()) RETURNING id"
            ),
            {"account": ACCOUNT_ID, "customer": customer_id},
        )
        # n = messages - 1 is the newest and the customer's (it opened the window).
        connection.execute(
            text(
                "INSERT INTO messages (mid, conversation_id, direction, sender_id, recipient_id,"
                " text, sent_at, created_at, source, is_deleted, is_unsupported, edit_count,"
                " is_placeholder)"
                " SELECT :prefix || n, :conversation,"
                "  CASE WHEN (:total - 1 - n) % 2 = 0 THEN 'inbound' ELSE 'outbound' END,"
                "  CASE WHEN (:total - 1 - n) % 2 = 0 THEN :customer ELSE :account END,"
                "  CASE WHEN (:total - 1 - n) % 2 = 0 THEN :account ELSE :customer END,"
                "  'history message ' || n,"
                "  now() - make_interval(secs => :total - 1 - n), now(),"
                "  CASE WHEN (:total - 1 - n) % 2 = 0 THEN 'webhook' ELSE 'echo' END,"
                "  false, false, 0, false"
                " FROM generate_series(0, :total - 1) AS n"
            ),
            {
                "prefix": f"bench-history-{customer_id}-",
                "conversation": conversation_id,
                "total": messages,
                "customer": customer_id,
                "account": ACCOUNT_ID,
            },
        )
    if vacuum:
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            # As autovacuum would after a while: fresh statistics and a visibility map.
            connection.execute(text("VACUUM ANALYZE messages"))
            connection.execute(text("VACUUM ANALYZE conversations"))
    return Preload(messages=messages, seconds=time.monotonic() - started)


# --- pg_stat_statements (with --profile) ------------------------------------------------------

STATEMENTS_SHOWN = 12


def statements_available(engine: Engine) -> bool:
    """Whether PostgreSQL records statement statistics (the extension needs
    `shared_preload_libraries = 'pg_stat_statements'` and a restart); creates it if so."""
    with engine.connect() as connection:
        preloaded = connection.execute(text("SHOW shared_preload_libraries")).scalar_one()
        if "pg_stat_statements" not in preloaded:
            return False
        connection.execute(text("CREATE EXTENSION IF NOT EXISTS pg_stat_statements"))
        connection.commit()
    return True


def reset_statements(engine: Engine) -> None:
    with engine.begin() as connection:
        connection.execute(text("SELECT pg_stat_statements_reset()"))


def statements_report(engine: Engine, *, requests: int) -> str:
    """What the bench database ran since the reset: per statement, calls per request, mean
    execution time in the server, and its share of the server's execution time."""
    query = text(
        "SELECT calls, total_exec_time, mean_exec_time, query FROM pg_stat_statements "
        "JOIN pg_database ON pg_database.oid = dbid WHERE datname = current_database() "
        "ORDER BY total_exec_time DESC"
    )
    with engine.connect() as connection:
        rows = connection.execute(query).all()
    total_time = sum(row.total_exec_time for row in rows) or 1.0
    total_calls = sum(row.calls for row in rows)
    per_request = total_calls / requests if requests else 0.0
    lines = [
        f"{total_calls} statements in {total_time:.0f} ms of PostgreSQL execution time; "
        f"{per_request:.2f} per request ({requests} requests, background work included)",
        "calls/request  mean ms  share  statement",
    ]
    for row in rows[:STATEMENTS_SHOWN]:
        shown = " ".join(row.query.split())[:150]
        lines.append(
            f"{row.calls / max(requests, 1):13.2f}  {row.mean_exec_time:7.3f}  "
            f"{100 * row.total_exec_time / total_time:4.0f}%  {shown}"
        )
    return "\n".join(lines) + "\n"
