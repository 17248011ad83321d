"""Shared fixtures: a fresh database per test (SQLite always, PostgreSQL when TEST_DATABASE_URL
is set), the Graph API sandbox and the service, both served over real HTTP on loopback."""

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
from tests.helpers import ACCOUNT_ID, APP_SECRET, USER_TOKEN, VERIFY_TOKEN, ServiceClient

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


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh database at the current schema, for one test, on each backend."""
    if request.param == "sqlite":
        path = tmp_path / "service.db"
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        return f"sqlite:///{path}"
    schema = request.getfixturevalue("fresh_schema")
    url = postgres_url_for_schema(schema)
    # The schema the migrations build equals the models' (test_migrations checks for drift),
    # so create_all is the fast way to a fresh schema per test.
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
        "instagram_graph_url": sandbox.url,
        "instagram_get_retries": 1,
        "instagram_read_timeout": 5,
        "profile_worker_idle_seconds": 0.05,
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
