"""Shared fixtures: a fresh database per test (SQLite always, PostgreSQL when TEST_DATABASE_URL
is set), the Graph API sandbox and the service, both served over real HTTP on loopback."""

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
from sqlalchemy import Engine, create_engine, make_url, text
from sqlalchemy.orm import Session, sessionmaker

from app.config import Settings
from app.main import create_app
from app.models import Base
from app.sandbox import SandboxConfig, create_sandbox_app
from app.sandbox.server import BackgroundServer
from app.services.health import migration_heads
from tests.helpers import (
    ACCOUNT_ID,
    API_KEY,
    APP_SECRET,
    USER_TOKEN,
    VERIFY_TOKEN,
    ServiceClient,
)
from tests.logcheck import LogCollector

REPO_ROOT = Path(__file__).resolve().parents[1]
TEST_DATABASE_URL = os.environ.get("TEST_DATABASE_URL")
BACKENDS = ["sqlite", "postgresql"]

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
    url = make_url(TEST_DATABASE_URL).update_query_dict({"options": f"-csearch_path={schema}"})
    return url.render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def postgres_admin() -> Iterator[Engine]:
    """An engine on TEST_DATABASE_URL, to create and drop per-test schemas.

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
    """A SQLite file migrated to head once; each test gets a copy."""
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
    with postgres_admin.connect() as connection:
        connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))


class Databases:
    """Fresh databases at the current schema, on one backend; all dropped at teardown."""

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
        with self.postgres_admin.connect() as connection:
            connection.execute(text(f'CREATE SCHEMA "{name}"'))
        self._schemas.append(name)
        url = postgres_url_for_schema(name)
        # The schema the migrations build equals the models' (test_migrations checks for
        # drift), so create_all is the fast way to a fresh schema.
        engine = create_engine(url)
        Base.metadata.create_all(engine)
        with engine.begin() as connection:
            connection.execute(
                text("CREATE TABLE alembic_version (version_num VARCHAR(32) PRIMARY KEY)")
            )
            for head in migration_heads():
                connection.execute(text("INSERT INTO alembic_version VALUES (:v)"), {"v": head})
        engine.dispose()
        return url

    def drop_all(self) -> None:
        if self.postgres_admin is None:
            return
        with self.postgres_admin.connect() as connection:
            for schema in self._schemas:
                connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))


@pytest.fixture(params=BACKENDS)
def databases(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Databases]:
    """A maker of fresh databases, for each backend the tests run on."""
    if request.param == "sqlite":
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


@pytest.fixture
def database_url(databases: Databases) -> str:
    """A fresh database for one test, on each backend."""
    return databases.new()


@pytest.fixture
def db(database_url: str) -> Iterator[Session]:
    """A session on the test database, to check what the service stored."""
    engine = create_engine(database_url)
    session = sessionmaker(bind=engine, expire_on_commit=False)()
    yield session
    session.close()
    engine.dispose()


@pytest.fixture
def sandbox() -> Iterator[BackgroundServer]:
    """The Graph API sandbox, served over HTTP; its webhooks go to `service` once it runs."""
    config = SandboxConfig(
        _env_file=None,
        access_token=USER_TOKEN,
        app_secret=APP_SECRET,
        account_id=ACCOUNT_ID,
        webhook_url="http://127.0.0.1:9/webhook",
    )
    with BackgroundServer(create_sandbox_app(config)) as server:
        yield server


@pytest.fixture
def service_environment(database_url: str, sandbox: BackgroundServer) -> dict[str, Any]:
    """The service's test configuration, as Settings keyword arguments."""
    return {
        "database_url": database_url,
        "instagram_app_secret": APP_SECRET,
        "instagram_user_token": USER_TOKEN,
        "instagram_webhook_token": VERIFY_TOKEN,
        "instagram_account_id": ACCOUNT_ID,
        # Most tests talk to the API without a key; the key's own tests set API_KEY.
        "allow_open_api": True,
        "instagram_graph_url": sandbox.url,
        "instagram_get_retries": 1,
        "instagram_read_timeout": 5,
        "profile_worker_idle_seconds": 0.05,
        # Every record is created, so the run's secret check (below) sees them all.
        "log_level": "DEBUG",
    }


StartService = Callable[..., BackgroundServer]


@pytest.fixture
def start_service(
    service_environment: dict[str, Any], sandbox: BackgroundServer
) -> Iterator[StartService]:
    """Start the service (settings overridden by keyword) wired to the sandbox both ways."""
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


@pytest.fixture
def service(start_service: StartService) -> BackgroundServer:
    """The service with the test settings."""
    return start_service()


@pytest.fixture
def api(service: BackgroundServer) -> Iterator[ServiceClient]:
    with ServiceClient(service.url) as client:
        yield client


@pytest.fixture
def meta(sandbox: BackgroundServer) -> Iterator[ServiceClient]:
    """A client for the sandbox's control API (`/_sandbox/...`)."""
    with ServiceClient(sandbox.url) as client:
        yield client


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
