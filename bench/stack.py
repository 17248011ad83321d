"""The three servers the bench runs — the service, the Graph API sandbox, the bare app — with
production uvicorn settings, on loopback, from a work directory where no `.env` is read.
"""

import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import requests

from app.config import Settings
from bench.processes import Process, Processes, free_port

REPO_ROOT = Path(__file__).resolve().parents[1]

# The server under test gets core 0 alone; the client (wrk), the sandbox and PostgreSQL share
# core 1 (see bench/README.md, "What the figures mean").
SERVER_CPUS = "0"
CLIENT_CPUS = "1"

# Made-up credentials the sandbox and the service share; nothing real is reached with them.
APP_SECRET = "bench-app-secret-0123456789abcdef0123"  # noqa: S105
USER_TOKEN = "IGAAbench-user-token"  # noqa: S105
API_KEY = "bench-api-key-0123456789abcdef012345678"
ACCOUNT_ID = "17841400000000001"
API_HEADERS = {"Authorization": f"Bearer {API_KEY}"}

UVICORN_FLAGS = ("--no-access-log", "--log-level", "warning")


def base_environment() -> dict[str, str]:
    """The caller's environment without any service or sandbox setting, code on PYTHONPATH."""
    setting_names = {name.upper() for name in Settings.model_fields}
    environment = {
        name: value
        for name, value in os.environ.items()
        if name not in setting_names and not name.startswith("SANDBOX_")
    }
    environment["PYTHONPATH"] = os.pathsep.join(
        part for part in (str(REPO_ROOT), os.environ.get("PYTHONPATH", "")) if part
    )
    environment["PYTHONUNBUFFERED"] = "1"
    return environment


@dataclass(frozen=True)
class Sandbox:
    """A running sandbox and its control API."""

    process: Process
    url: str

    def control(self, method: str, path: str, **kwargs: object) -> requests.Response:
        response = requests.request(method, f"{self.url}/_sandbox{path}", timeout=30, **kwargs)
        response.raise_for_status()
        return response

    def calls(self, kind: str | None = None) -> list[dict[str, object]]:
        """The Graph calls the service made (all, or of one kind: send, profile, me…)."""
        calls = self.control("GET", "/calls").json()
        return [call for call in calls if kind is None or call["kind"] == kind]

    def add_customer(self, customer_id: str, *, username: str) -> None:
        """A customer who wrote to the business just now: profile shared, window open."""
        self.control("POST", "/customers", json={"id": customer_id, "username": username})
        self.control(
            "POST", f"/customers/{customer_id}/messages", json={"text": "hi", "deliver": False}
        )


def start_sandbox(
    processes: Processes, *, webhook_url: str, latency_ms: int = 0, echo_mode: str = "off"
) -> Sandbox:
    """The Graph API sandbox on the client's core, answering after `latency_ms`.

    Echoes are off by default: an echo is a webhook delivery, measured by the ingest
    scenarios, and would double the work of a send scenario.
    """
    port = free_port()
    process = processes.start(
        "sandbox",
        [
            *(sys.executable, "-m", "app.sandbox", "--port", str(port)),
            *("--webhook-url", webhook_url, "--latency-ms", str(latency_ms)),
        ],
        cpus=CLIENT_CPUS,
        ready_url=f"http://127.0.0.1:{port}/_sandbox/config",
        extra_environment={
            "INSTAGRAM_APP_SECRET": APP_SECRET,
            "INSTAGRAM_USER_TOKEN": USER_TOKEN,
            "INSTAGRAM_ACCOUNT_ID": ACCOUNT_ID,
            "SANDBOX_ECHO_MODE": echo_mode,
        },
    )
    return Sandbox(process=process, url=f"http://127.0.0.1:{port}")


def service_settings(
    *, database_url: str, graph_url: str, overrides: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The service's environment: production defaults plus the bench's wiring."""
    return {
        # Set explicitly, blanks included: environment variables win over any `.env`.
        "DATABASE_URL": database_url,
        "DB_USER": "",
        "DB_PASSWORD": "",
        "DB_HOST": "",
        "DB_NAME": "",
        "INSTAGRAM_APP_SECRET": APP_SECRET,
        "INSTAGRAM_USER_TOKEN": USER_TOKEN,
        "INSTAGRAM_WEBHOOK_TOKEN": "bench-verify-token-0123456789abcdef012",
        "INSTAGRAM_ACCOUNT_ID": ACCOUNT_ID,
        "INSTAGRAM_GRAPH_URL": graph_url,
        "INSTAGRAM_SEND_MESSAGE_URL": "",
        "API_KEY": API_KEY,
        # Nothing refreshes the made-up token during a run (the job would only add noise).
        "TOKEN_REFRESH_ENABLED": "false",
        **(overrides or {}),
    }


def start_service(
    processes: Processes,
    *,
    database_url: str,
    graph_url: str,
    overrides: Mapping[str, str] | None = None,
    port: int | None = None,
    name: str = "service",
    cpus: str | None = SERVER_CPUS,
    extra_args: Sequence[str] = (),
) -> Process:
    """`uvicorn app.main:app` as in production (one process, no reload, no access log)."""
    port = port or free_port()
    return processes.start(
        name,
        # The app comes last: a `pkill -f "uvicorn app.main:app"` meant for a developer's own
        # server leaves the bench's alone.
        [
            *(sys.executable, "-m", "uvicorn"),
            *("--host", "127.0.0.1", "--port", str(port), *UVICORN_FLAGS, *extra_args),
            "app.main:app",
        ],
        cpus=cpus,
        ready_url=f"http://127.0.0.1:{port}/ready",
        extra_environment=service_settings(
            database_url=database_url, graph_url=graph_url, overrides=overrides
        ),
    )


def start_bare_app(
    processes: Processes,
    *,
    extra_args: Sequence[str] = (),
    environment: Mapping[str, str] | None = None,
) -> Process:
    """The bare FastAPI app under the same uvicorn settings, on the server's core
    (`environment`: its BARE_DATABASE_* settings, for the floor of a durable intake)."""
    port = free_port()
    return processes.start(
        "bare app",
        [
            *(sys.executable, "-m", "uvicorn"),
            *("--host", "127.0.0.1", "--port", str(port), *UVICORN_FLAGS, *extra_args),
            "bench.bare_app:app",
        ],
        cpus=SERVER_CPUS,
        ready_url=f"http://127.0.0.1:{port}/",
        extra_environment=environment,
    )


def base_url(process: Process) -> str:
    """`http://127.0.0.1:<port>` of a started server."""
    assert process.url is not None
    scheme, rest = process.url.split("://", 1)
    return f"{scheme}://{rest.split('/', 1)[0]}"
