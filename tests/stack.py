"""The Graph API sandbox and one service per database backend, started once per test run and
brought back to a fresh start before each test (tests/conftest.py wires them as fixtures).

Starting a uvicorn server, a sandbox and the service's background threads for every test cost
most of the suite's time; what a test may leave behind is cleared instead:

- the database: on PostgreSQL the schema the service's `search_path` names is replaced by a
  fresh one built (from the models' DDL) while the last test ran; SQLite replaces the file
  with a copy of a template migrated once. The service's connection pool is emptied first, so
  no connection outlives the database it was opened on.
- the sandbox: its reset (what `POST /_sandbox/reset` does: customers, calls, sends, faults,
  tokens, knobs), which also lets go of calls a fault is still holding.
- the service's own memory: sends waiting to be recorded, the cached token, the log setup.
- its background threads (profile fetcher, token refresher, sent-recorder) are paused between
  tests and resumed only for tests that ask for the running service; nothing is reset while a
  request or a round of theirs is in flight.
"""

import itertools
import os
import shutil
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from sqlalchemy import Engine, create_mock_engine, make_url, text
from starlette.types import ASGIApp, Receive, Scope, Send

from app.config import Settings
from app.logs import configure_logging
from app.main import create_app
from app.models import Base
from app.sandbox import SandboxConfig, SandboxState, create_sandbox_app
from app.sandbox.server import BackgroundServer
from app.services.health import migration_heads
from tests.helpers import ACCOUNT_ID, APP_SECRET, USER_TOKEN, VERIFY_TOKEN

# Nothing listens there: a sandbox whose webhooks are not wired to a service yet, a service
# without a Graph API.
NOWHERE_URL = "http://127.0.0.1:9"
NOWHERE = f"{NOWHERE_URL}/webhook"
QUIET_TIMEOUT = 30  # seconds for requests in flight to finish before a reset


class InFlight:
    """ASGI middleware counting the HTTP requests being served (a sandbox's answer includes
    the echo webhook it sends afterwards), to wait until none is."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._count = 0
        self._changed = threading.Condition()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        with self._changed:
            self._count += 1
        try:
            await self.app(scope, receive, send)
        finally:
            with self._changed:
                self._count -= 1
                self._changed.notify_all()

    def wait_idle(self, timeout: float = QUIET_TIMEOUT) -> bool:
        """Block until no request is in flight; whether one had to be waited for."""
        with self._changed:
            waited = self._count > 0
            if not self._changed.wait_for(lambda: self._count == 0, timeout):
                raise AssertionError(f"{self._count} request(s) still in flight after {timeout}s")
            return waited


def sandbox_config(**overrides: Any) -> SandboxConfig:
    values: dict[str, Any] = {
        "access_token": USER_TOKEN,
        "app_secret": APP_SECRET,
        "account_id": ACCOUNT_ID,
        "webhook_url": NOWHERE,
        **overrides,
    }
    return SandboxConfig(_env_file=None, **values)


class SharedSandbox:
    """The Graph API sandbox over HTTP for the whole run."""

    def __init__(self) -> None:
        self.app = create_sandbox_app(sandbox_config())
        self.requests = InFlight(self.app)
        self.server = BackgroundServer(self.requests).start()
        self.url = self.server.url

    @property
    def state(self) -> SandboxState:
        return self.app.state.sandbox

    def reset(self) -> None:
        """What `POST /_sandbox/reset` does, without the round trip."""
        self.state.reset()

    def send_webhooks_to(self, url: str) -> None:
        self.state.update_settings(webhook_url=url)

    def close(self) -> None:
        self.server.stop()


# --- databases -------------------------------------------------------------------------------


def postgres_url_for_schema(base_url: str, schema: str) -> str:
    url = make_url(base_url).update_query_dict({"options": f"-csearch_path={schema}"})
    return url.render_as_string(hide_password=False)


def _models_ddl() -> str:
    """The PostgreSQL DDL `Base.metadata.create_all` runs, plus alembic's version table at head
    (the migrations build the same schema: test_migrations checks there is no drift)."""
    statements: list[str] = []
    engine = create_mock_engine(
        make_url("postgresql+psycopg2://"),
        lambda sql, *_, **__: statements.append(str(sql.compile(dialect=engine.dialect))),
    )
    Base.metadata.create_all(engine, checkfirst=False)
    statements.append("CREATE TABLE alembic_version (version_num VARCHAR(32) PRIMARY KEY)")
    # The heads are our own migration files' revision ids.
    insert = "INSERT INTO alembic_version VALUES ('{}')"
    statements += [insert.format(head) for head in migration_heads()]
    return ";\n".join(statement.strip() for statement in statements)


MODELS_DDL = _models_ddl()


def create_postgres_schema(admin: Engine, schema: str, *, replace: bool = False) -> None:
    """A schema at the newest migration, in one round trip (dropping the old one if asked)."""
    drop = f'DROP SCHEMA IF EXISTS "{schema}" CASCADE;\n' if replace else ""
    with admin.connect() as connection:
        # One implicit transaction: SET LOCAL holds for the DDL only, not for the connection.
        # A connection left open on the old schema makes the DROP fail, not hang.
        connection.exec_driver_sql(
            f"SET LOCAL lock_timeout = '10s';\n{drop}CREATE SCHEMA \"{schema}\";\n"
            f'SET LOCAL search_path TO "{schema}";\n{MODELS_DDL}'
        )


def drop_postgres_schema(admin: Engine, schema: str) -> None:
    with admin.connect() as connection:
        connection.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))


class SharedDatabase:
    """One database of a backend, reset to a fresh one at the newest migration on demand.

    On PostgreSQL the next fresh schema is built in the background while a test runs; a
    reset swaps it in under the name the service's `search_path` holds (two renames in one
    transaction) and drops the used one in the background too.
    """

    def __init__(
        self,
        backend: str,
        *,
        directory: Path,
        sqlite_template: Path | None = None,
        postgres_admin: Engine | None = None,
        postgres_url: str | None = None,
    ) -> None:
        self.backend = backend
        name = f"test_shared_{uuid.uuid4().hex[:8]}"
        if backend == "sqlite":
            assert sqlite_template is not None
            self.template = sqlite_template
            self.path = directory / f"{name}.db"
            self.url = f"sqlite:///{self.path}"
        else:
            assert postgres_admin is not None
            assert postgres_url is not None
            self.admin = postgres_admin
            self.schema = name
            self.url = postgres_url_for_schema(postgres_url, name)
            self._background = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
            self._names = itertools.count()
            self._spare: Future[str] | None = None
            self._dropped: Future[None] | None = None
        self.reset()

    def reset(self) -> None:
        """Replace the database with a fresh one. Every engine on it must be disposed first."""
        if self.backend == "sqlite":
            fresh = self.path.with_suffix(".fresh")
            shutil.copyfile(self.template, fresh)
            for leftover in (Path(f"{self.path}-wal"), Path(f"{self.path}-shm")):
                leftover.unlink(missing_ok=True)
            os.replace(fresh, self.path)
            return
        if self._dropped is not None:
            self._dropped.result()  # a failure there (a connection left open) shows here
        if self._spare is None:
            create_postgres_schema(self.admin, self.schema, replace=True)
        else:
            spare, used = self._spare.result(), f"{self.schema}_used_{next(self._names)}"
            with self.admin.connect() as connection:
                connection.exec_driver_sql(
                    f"SET LOCAL lock_timeout = '10s';\n"
                    f'ALTER SCHEMA "{self.schema}" RENAME TO "{used}";\n'
                    f'ALTER SCHEMA "{spare}" RENAME TO "{self.schema}"'
                )
            self._dropped = self._background.submit(drop_postgres_schema, self.admin, used)
        self._spare = self._background.submit(self._make_spare)

    def _make_spare(self) -> str:
        spare = f"{self.schema}_spare_{next(self._names)}"
        create_postgres_schema(self.admin, spare)
        return spare

    def drop(self) -> None:
        if self.backend == "postgresql":
            if self._spare is not None:
                drop_postgres_schema(self.admin, self._spare.result())
            if self._dropped is not None:
                self._dropped.result()
            self._background.shutdown()
            drop_postgres_schema(self.admin, self.schema)


# --- the shared service ----------------------------------------------------------------------


def service_settings(*, database_url: str, graph_url: str) -> dict[str, Any]:
    """The service's test configuration, as Settings keyword arguments."""
    return {
        "database_url": database_url,
        "instagram_app_secret": APP_SECRET,
        "instagram_user_token": USER_TOKEN,
        "instagram_webhook_token": VERIFY_TOKEN,
        "instagram_account_id": ACCOUNT_ID,
        # Most tests talk to the API without a key; the key's own tests set API_KEY.
        "allow_open_api": True,
        "instagram_graph_url": graph_url,
        "instagram_get_retries": 1,
        "instagram_read_timeout": 5,
        # An idle fetcher looks for due profiles 50 times a second: tests wait less for one.
        "profile_worker_idle_seconds": 0.02,
        # Consumers' endpoints are local receivers; retries come fast.
        "events_allow_private_urls": True,
        "events_retry_schedule": "0.1,0.2,0.3",
        "events_timeout_seconds": 1,
        # Delivery at the normal CPU priority: on a loaded machine a niced delivery would wait
        # behind the tests' own processes (tests/events/test_delivery_batches.py checks nice).
        "events_delivery_nice": 0,
        # Every record is created, so the run's secret check (conftest.py) sees them all.
        "log_level": "DEBUG",
    }


class SharedService:
    """The service with the test settings on one backend's shared database, for the whole run.

    Between tests its background threads are paused; `start()` gives a test the service as a
    fresh start would: token stored, logging configured, threads running, webhooks wired.
    """

    def __init__(self, database: SharedDatabase, sandbox: SharedSandbox, **overrides: Any) -> None:
        self.database = database
        self.sandbox = sandbox
        settings = service_settings(database_url=database.url, graph_url=sandbox.url)
        self.settings = Settings(_env_file=None, **{**settings, **overrides})
        self.app: FastAPI = create_app(self.settings)
        self.requests = InFlight(self.app)
        self.server = BackgroundServer(self.requests).start()
        self.url = self.server.url
        self.pause_workers()

    @property
    def workers(self) -> tuple[Any, ...]:
        return tuple(self.app.state.workers)

    def pause_workers(self) -> None:
        """Let the rounds in progress end; start no other until `resume_workers()`."""
        for worker in self.workers:
            worker.pause()

    def resume_workers(self) -> None:
        for worker in self.workers:
            worker.resume()

    def forget(self) -> None:
        """Drop what the process holds of the last test: connections, sends waiting to be
        recorded, the cached token, the accounts intake served."""
        state = self.app.state
        state.engine.dispose()
        state.unrecorded_sends.take()
        state.tokens.forget()
        state.intake_accounts.forget()

    def start(self, *, workers: bool = True) -> None:
        """What the service's lifespan does at start, on the database as it is now (its
        background threads left paused unless `workers`)."""
        configure_logging(self.settings.log_level, log_format=self.settings.log_format)
        self.app.state.tokens.adopt_at_start()
        if workers:
            self.resume_workers()
        self.sandbox.send_webhooks_to(f"{self.url}/webhook")

    def close(self) -> None:
        self.resume_workers()  # a paused thread would hold up the lifespan's stop
        self.server.stop()


class Stack:
    """The run's sandbox, and per backend a shared database and the services on it: the one
    with the test settings, and any with other settings a module shares (made on first use)."""

    def __init__(
        self,
        *,
        directory: Path,
        sqlite_template: Callable[[], Path],
        postgres_admin: Callable[[], Engine],
        postgres_url: str | None,
    ) -> None:
        self.directory = directory
        self._sqlite_template = sqlite_template
        self._postgres_admin = postgres_admin
        self._postgres_url = postgres_url
        self.sandbox = SharedSandbox()
        self._databases: dict[str, SharedDatabase] = {}
        self._services: dict[tuple[str, str], SharedService] = {}

    def database(self, backend: str) -> SharedDatabase:
        if backend not in self._databases:
            if backend == "sqlite":
                made = SharedDatabase(
                    backend, directory=self.directory, sqlite_template=self._sqlite_template()
                )
            else:
                made = SharedDatabase(
                    backend,
                    directory=self.directory,
                    postgres_admin=self._postgres_admin(),
                    postgres_url=self._postgres_url,
                )
            self._databases[backend] = made
        return self._databases[backend]

    def service(self, backend: str, **overrides: Any) -> SharedService:
        """The shared service on the backend's database with these settings (started paused,
        the first time, on the database as the current test has it)."""
        key = (backend, repr(sorted(overrides.items())))
        if key not in self._services:
            self._services[key] = SharedService(self.database(backend), self.sandbox, **overrides)
        return self._services[key]

    def quiet(self) -> None:
        """No background round and no request in flight anywhere; the sandbox reset."""
        services = list(self._services.values())
        for service in services:
            service.pause_workers()
        # The reset also lets go of calls a fault holds, so their requests can end.
        self.sandbox.reset()
        deadline = time.monotonic() + QUIET_TIMEOUT
        servers = [self.sandbox.requests, *(service.requests for service in services)]
        while any([server.wait_idle() for server in servers]):
            # One answer can start another request (an echo): look again until none did.
            assert time.monotonic() < deadline, "requests kept arriving"
        self.sandbox.reset()

    def fresh_database(self, backend: str) -> SharedDatabase:
        """The backend's shared database made anew, its services emptied (`quiet()` first)."""
        for (service_backend, _), service in self._services.items():
            if service_backend == backend:
                service.forget()
        database = self.database(backend)
        database.reset()
        return database

    def close(self) -> None:
        self.quiet()
        for service in self._services.values():
            service.close()
        for database in self._databases.values():
            database.drop()
        self.sandbox.close()
