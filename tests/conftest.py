"""Shared fixtures: the database of each backend (SQLite always, PostgreSQL when
TEST_DATABASE_URL is set) made fresh for every test, and the Graph API sandbox and the service,
both served over real HTTP on loopback, started once per run and reset between tests
(tests/stack.py)."""

import logging
import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from alembic import command
from alembic.config import Config
from fastapi.testclient import TestClient
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.orm import Session, sessionmaker

from app.config import Settings
from app.db import create_db_engine
from app.main import create_app
from app.sandbox.server import BackgroundServer
from tests import stack as shared
from tests.helpers import (
    ACCOUNT_ID,
    API_KEY,
    APP_SECRET,
    USER_TOKEN,
    VERIFY_TOKEN,
    Clock,
    ServiceClient,
    customer_writes,
    new_customer,
    wait_for_profiles,
)
from tests.logcheck import LogCollector
from tests.stack import SharedService, Stack

REPO_ROOT = Path(__file__).resolve().parents[1]
TEST_DATABASE_URL = os.environ.get("TEST_DATABASE_URL")
BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]

# Every variable Settings or SandboxConfig would read: tests must not see the developer's setup.
_SETTING_VARIABLES = [name.upper() for name in Settings.model_fields] + [
    "SANDBOX_WEBHOOK_URL",
    "SANDBOX_LATENCY_MS",
    "SANDBOX_ECHO_MODE",
    "SANDBOX_ACCOUNT_USERNAME",
    "SANDBOX_APP_SCOPED_ID",
]


@pytest.fixture(autouse=True)
def _hermetic_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in _SETTING_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    # A .env in the working directory would still be read by code that builds Settings().
    monkeypatch.chdir(tmp_path)


def alembic_config(url: str) -> Config:
    config = Config(str(REPO_ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(REPO_ROOT / "alembic"))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    config.attributes["configure_logger"] = False
    return config


def postgres_url_for_schema(schema: str) -> str:
    assert TEST_DATABASE_URL is not None
    return shared.postgres_url_for_schema(TEST_DATABASE_URL, schema)


@pytest.fixture(scope="session")
def postgres_admin() -> Iterator[Engine]:
    """An engine on TEST_DATABASE_URL, to create and drop schemas.

    When TEST_DATABASE_URL is set, PostgreSQL is mandatory: an unreachable server fails the
    run instead of skipping its tests.
    """
    if not TEST_DATABASE_URL:
        pytest.skip("PostgreSQL tests need TEST_DATABASE_URL")
    engine = create_engine(TEST_DATABASE_URL, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(text("SELECT 1"))
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file migrated to head once; each fresh database is a copy."""
    path = tmp_path_factory.mktemp("template") / "template.db"
    command.upgrade(alembic_config(f"sqlite:///{path}"), "head")
    return path


@pytest.fixture
def fresh_schema(postgres_admin: Engine) -> Iterator[str]:
    """An empty PostgreSQL schema of its own for one test, dropped afterwards."""
    schema = f"test_{uuid.uuid4().hex[:12]}"
    with postgres_admin.connect() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    yield schema
    shared.drop_postgres_schema(postgres_admin, schema)


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """The database backend a test runs on: each test that needs a database runs on both."""
    return request.param


class Databases:
    """More fresh databases at the current schema, on one backend; dropped at teardown."""

    def __init__(
        self,
        backend: str,
        *,
        directory: Path,
        sqlite_template: Path | None = None,
        postgres_admin: Engine | None = None,
    ) -> None:
        self.backend = backend
        self.directory = directory
        self.sqlite_template = sqlite_template
        self.postgres_admin = postgres_admin
        self._schemas: list[str] = []

    def new(self) -> str:
        """The URL of a new, empty database at the newest migration."""
        name = f"test_{uuid.uuid4().hex[:12]}"
        if self.backend == "sqlite":
            assert self.sqlite_template is not None
            path = self.directory / f"{name}.db"
            shutil.copy(self.sqlite_template, path)
            return f"sqlite:///{path}"
        assert self.postgres_admin is not None
        shared.create_postgres_schema(self.postgres_admin, name)
        self._schemas.append(name)
        return postgres_url_for_schema(name)

    def drop_all(self) -> None:
        if self.postgres_admin is None:
            return
        for schema in self._schemas:
            shared.drop_postgres_schema(self.postgres_admin, schema)


@pytest.fixture
def databases(request: pytest.FixtureRequest, backend: str, tmp_path: Path) -> Iterator[Databases]:
    """A maker of fresh databases besides `database_url`, on the test's backend."""
    if backend == "sqlite":
        made = Databases(
            "sqlite", directory=tmp_path, sqlite_template=request.getfixturevalue("sqlite_template")
        )
    else:
        made = Databases(
            "postgresql",
            directory=tmp_path,
            postgres_admin=request.getfixturevalue("postgres_admin"),
        )
    yield made
    made.drop_all()


@pytest.fixture(scope="session")
def stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    """The run's sandbox and shared services (tests/stack.py)."""
    made = Stack(
        directory=tmp_path_factory.mktemp("shared"),
        sqlite_template=lambda: request.getfixturevalue("sqlite_template"),
        postgres_admin=lambda: request.getfixturevalue("postgres_admin"),
        postgres_url=TEST_DATABASE_URL,
    )
    yield made
    made.close()


@pytest.fixture
def shared_database(backend: str, stack: Stack, sandbox: BackgroundServer) -> shared.SharedDatabase:
    """The backend's shared database, made anew for this test (once `sandbox` has made
    everything quiet)."""
    return stack.fresh_database(backend)


@pytest.fixture
def database_url(shared_database: shared.SharedDatabase) -> str:
    """A fresh database for one test, on each backend (the shared services', which run only
    for tests that ask for one)."""
    return shared_database.url


@pytest.fixture
def db(database_url: str) -> Iterator[Session]:
    """A session on the test database, to check what the service stored."""
    engine = create_engine(database_url)
    session = sessionmaker(bind=engine, expire_on_commit=False)()
    yield session
    session.close()
    engine.dispose()


MakeSettings = Callable[..., Settings]


@pytest.fixture
def make_settings(database_url: str, sandbox: BackgroundServer) -> MakeSettings:
    """Settings for a use case run in the test process (not through a service): the
    service's test settings, without retries of Graph reads; `overrides` on top."""

    def make(**overrides: Any) -> Settings:
        values = shared.service_settings(database_url=database_url, graph_url=sandbox.url)
        return Settings(_env_file=None, **{**values, "instagram_get_retries": 0, **overrides})

    return make


@pytest.fixture
def session_factory(settings: Settings) -> Iterator[sessionmaker[Session]]:
    """Sessions on the database of the module's `settings` (its own engine)."""
    engine = create_db_engine(settings)
    yield sessionmaker(bind=engine, expire_on_commit=False)
    engine.dispose()


@pytest.fixture
def sandbox(stack: Stack) -> BackgroundServer:
    """The Graph API sandbox over HTTP, reset, once no request or background round of the
    last test is in flight anywhere; its webhooks go to `service` once it runs."""
    stack.quiet()
    return stack.sandbox.server


@pytest.fixture
def service_environment(database_url: str, sandbox: BackgroundServer) -> dict[str, Any]:
    """The service's test configuration, as Settings keyword arguments."""
    return shared.service_settings(database_url=database_url, graph_url=sandbox.url)


StartService = Callable[..., BackgroundServer]


@pytest.fixture
def start_service(
    service_environment: dict[str, Any], sandbox: BackgroundServer
) -> Iterator[StartService]:
    """Start a service of its own (settings overridden by keyword) on the test's database,
    wired to the sandbox both ways."""
    servers: list[BackgroundServer] = []

    def start(**overrides: Any) -> BackgroundServer:
        configured = Settings(_env_file=None, **{**service_environment, **overrides})
        server = BackgroundServer(create_app(configured)).start()
        servers.append(server)
        requests.put(
            f"{sandbox.url}/_sandbox/config",
            json={"webhook_url": f"{server.url}/webhook"},
            timeout=5,
        ).raise_for_status()
        return server

    yield start
    for server in servers:
        server.stop()


StartShared = Callable[..., SharedService]


@pytest.fixture
def start_shared(
    backend: str, shared_database: shared.SharedDatabase, sandbox: BackgroundServer, stack: Stack
) -> Iterator[StartShared]:
    """Start, for this test, a service the run shares (with the test settings, overridden by
    keyword) on the test's database: token stored, logging set, webhooks wired to it, and its
    background threads working unless `workers=False`."""
    started: list[SharedService] = []

    def start(*, workers: bool = True, **overrides: Any) -> SharedService:
        made = stack.service(backend, **overrides)
        made.start(workers=workers)
        started.append(made)
        return made

    yield start
    for made in started:
        made.pause_workers()


@pytest.fixture
def service(start_shared: StartShared) -> SharedService:
    """The service with the test settings, running: its background threads work and the
    sandbox's webhooks reach it."""
    return start_shared()


@pytest.fixture
def quiet_service(start_shared: StartShared) -> SharedService:
    """The service with the test settings, its background threads paused (as with
    PROFILE_WORKER_ENABLED=false: no profile is fetched unless a request asks)."""
    return start_shared(workers=False)


InProcess = Callable[..., TestClient]


@pytest.fixture
def in_process() -> Iterator[InProcess]:
    """Build the service in this process (FastAPI's TestClient) with these settings, for
    what needs no server: validation, authentication, documents. Without `lifespan=True` no
    background thread starts and nothing is stored at start; without a `database_url` nothing
    may touch the database (the embedded default, never created: a request that reached it
    would fail)."""
    built: list[tuple[TestClient, bool]] = []
    # The test client's own request lines (its URLs hold what the test sends, a handshake's
    # verify token too) are not the service's logs, which the run-wide check is about.
    client_log = logging.getLogger("httpx2")
    level = client_log.level
    client_log.setLevel(logging.WARNING)

    def build(
        base: dict[str, Any] | None = None, *, lifespan: bool = False, **overrides: Any
    ) -> TestClient:
        # Open on purpose unless a test gives an API key (the service refuses to start
        # open otherwise: tests/test_safety.py).
        values = {"allow_open_api": True, **(base or {}), **overrides}
        settings = Settings(_env_file=None, **values)
        client = TestClient(create_app(settings), raise_server_exceptions=False)
        if lifespan:
            client.__enter__()
        built.append((client, lifespan))
        return client

    yield build
    for client, lifespan in built:
        if lifespan:
            client.__exit__(None, None, None)
        else:
            client.app.state.instagram.close()  # type: ignore[attr-defined]
            client.app.state.engine.dispose()  # type: ignore[attr-defined]
        client.close()
    client_log.setLevel(level)


@pytest.fixture
def service_in_process(in_process: InProcess) -> TestClient:
    """The service with the test settings, in process, with no database and no Graph API
    behind it: for what it must answer before it would need either (validation, handshake,
    documents)."""
    return in_process(shared.service_settings(database_url="", graph_url=shared.NOWHERE_URL))


# Nothing listens on port 1: a database that is down.
DATABASE_DOWN = "postgresql+psycopg2://nobody@127.0.0.1:1/none"


@pytest.fixture
def database_down(in_process: InProcess) -> TestClient:
    """The service with the test settings, in process, whose database is down (whatever the
    backend: nothing answers)."""
    settings = shared.service_settings(database_url=DATABASE_DOWN, graph_url=shared.NOWHERE_URL)
    return in_process(settings, db_connect_timeout=1)


@pytest.fixture
def api(service: SharedService) -> Iterator[ServiceClient]:
    with ServiceClient(service.url) as client:
        yield client


@pytest.fixture
def meta(sandbox: BackgroundServer) -> Iterator[ServiceClient]:
    """A client for the sandbox's control API (`/_sandbox/...`)."""
    with ServiceClient(sandbox.url) as client:
        yield client


ANNA_FIRST_WORDS = "Hi! Do you ship to Berlin?"


@pytest.fixture
def anna(meta: ServiceClient, service: SharedService, db: Session) -> dict[str, Any]:
    """A sandbox customer who just wrote to the business (window open, consent given) and
    whose profile the service has fetched."""
    customer = new_customer(
        meta,
        username="anna_k",
        name="Anna K",
        profile_pic="https://cdn.test/anna.jpg",
        follower_count=321,
        is_user_follow_business=True,
    )
    customer_writes(meta, customer["id"], ANNA_FIRST_WORDS)
    wait_for_profiles(db, customer["id"], ACCOUNT_ID)
    return customer


@pytest.fixture
def clock() -> Clock:
    """A controllable clock for background work run by hand (fetcher rounds, token refresh)."""
    return Clock()


# --- no secret in any log line of the whole run --------------------------------------------------

RUN_LOGS = LogCollector(secrets=(APP_SECRET, USER_TOKEN, VERIFY_TOKEN, API_KEY))


@pytest.fixture(scope="session", autouse=True)
def _collect_every_log_record() -> Iterator[None]:
    """Every record any test produces, at every level, goes through RUN_LOGS."""
    root = logging.getLogger()
    previous_level = root.level
    root.setLevel(logging.DEBUG)
    root.addHandler(RUN_LOGS)
    yield
    root.removeHandler(RUN_LOGS)
    root.setLevel(previous_level)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Fail the run when a log record held a test secret or a token."""
    if not RUN_LOGS.leaking:
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    lines = [f"{len(RUN_LOGS.leaking)} log record(s) of this run hold a secret or a token:"]
    lines += RUN_LOGS.leaking[:20]
    if reporter is not None:
        reporter.write_sep("=", "secrets in the logs", red=True)
        for line in lines:
            reporter.write_line(line)
    session.exitstatus = pytest.ExitCode.TESTS_FAILED
