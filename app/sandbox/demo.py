"""`fab demo`: the service and the Graph API sandbox side by side, with customers who wrote in.

Both run as subprocesses on loopback with a fixed configuration and a fresh SQLite file, so
the demo works on a fresh clone and nothing in the developer's shell or `.env` leaks in.
"""

import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType, TracebackType
from typing import IO, Any, NoReturn

import requests

from app.config import Settings

REPO_ROOT = Path(__file__).resolve().parents[2]
DATABASE_FILE = "insta_service_demo.db"
STARTUP_TIMEOUT_SECONDS = 20.0
STOP_TIMEOUT_SECONDS = 5.0
HTTP_TIMEOUT_SECONDS = 10.0

# A made-up token the sandbox and the service share; nothing real is reached with it.
USER_TOKEN = "demo-user-token"  # noqa: S105
ACCOUNT_ID = "17841400000000001"
# The second business account the demo adds through the service's accounts API.
SECOND_ACCOUNT_ID = "17841400000000002"
SECOND_ACCOUNT_USERNAME = "demo_second_shop"


@dataclass(frozen=True)
class DemoSecrets:
    """Secrets made for one run of the demo: the service refuses known or short ones, and a
    demo must not teach anyone to reuse a published key."""

    api_key: str
    app_secret: str
    verify_token: str

    @classmethod
    def generate(cls) -> "DemoSecrets":
        return cls(
            api_key=secrets.token_urlsafe(32),
            app_secret=secrets.token_hex(16),
            verify_token=secrets.token_urlsafe(32),
        )


@dataclass(frozen=True)
class ScriptedCustomer:
    """A sandbox customer and what they write to the business once the demo is up."""

    username: str
    name: str
    messages: tuple[str, ...]
    account_id: str = ACCOUNT_ID  # the business account they write to


CUSTOMERS = (
    ScriptedCustomer(
        username="anna_demo",
        name="Anna Demo",
        messages=("Hi! Is the blue jacket still available?", "Size M, if you have it."),
    ),
    ScriptedCustomer(
        username="boris_demo", name="Boris Demo", messages=("Do you ship to Lisbon?",)
    ),
    ScriptedCustomer(
        username="carla_demo",
        name="Carla Demo",
        messages=("Hello second shop! Any table free tonight?",),
        account_id=SECOND_ACCOUNT_ID,
    ),
)


class DemoError(RuntimeError):
    """The demo could not start: a port is taken, a process died or did not answer in time."""


def print_now(line: str) -> None:
    # Flushed, so `fab demo > log &` shows the instructions before the demo is stopped.
    print(line, flush=True)


@dataclass(eq=False)  # compared and hashed by identity: one object per process
class DemoProcess:
    """One subprocess of the demo; its output goes to a temporary file, shown if it fails."""

    name: str
    popen: subprocess.Popen[bytes]
    log: IO[bytes]
    printed: str = ""

    def is_running(self) -> bool:
        return self.popen.poll() is None

    def stop(self) -> None:
        """Terminate, wait a little, kill if it will not go; keep what it printed."""
        if self.is_running():
            self.popen.terminate()
        try:
            self.popen.wait(timeout=STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait()
        # Read only now: the process writes through the same file offset that seek() moves.
        if not self.log.closed:
            self.log.seek(0)
            self.printed = self.log.read().decode(errors="replace")
            self.log.close()


@dataclass
class DemoResult:
    """A running demo: where things are, who wrote in; `stop()` (or `with`) ends it."""

    service_url: str
    sandbox_url: str
    database: Path
    customers: dict[str, dict[str, Any]]
    processes: list[DemoProcess] = field(repr=False)
    demo_secrets: DemoSecrets = field(repr=False, default_factory=DemoSecrets.generate)

    @property
    def api_key(self) -> str:
        """The API key of this run (printed in the `curl` lines)."""
        return self.demo_secrets.api_key

    def stop(self) -> None:
        """Stop both processes (safe to call twice)."""
        _stop_all(self.processes)

    def wait_until_interrupted(self, *, out: Callable[[str], object] = print_now) -> None:
        """Block until Ctrl-C; fail if a process exits on its own meanwhile."""
        try:
            while True:
                for process in self.processes:
                    if not process.is_running():
                        code = process.popen.returncode
                        reason = f"the {process.name} exited unexpectedly (code {code})"
                        _fail(process, reason=reason, processes=self.processes, out=out)
                time.sleep(0.5)
        except KeyboardInterrupt:
            out("Stopping the demo…")

    def __enter__(self) -> "DemoResult":
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def demo_environment(
    *,
    database: Path,
    sandbox_port: int,
    demo_secrets: DemoSecrets,
    inherited: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The subprocesses' environment: the caller's without any setting, plus the demo's."""
    inherited = os.environ if inherited is None else inherited
    setting_names = {name.upper() for name in Settings.model_fields}
    environment = {
        name: value
        for name, value in inherited.items()
        if name not in setting_names and not name.startswith("SANDBOX_")
    }
    pythonpath = [str(REPO_ROOT), inherited.get("PYTHONPATH", "")]
    environment.update(
        # The processes run in the work directory, where `-m app...` would not find the code.
        PYTHONPATH=os.pathsep.join(part for part in pythonpath if part),
        PYTHONUNBUFFERED="1",
        # Set explicitly, empty ones included: a `.env` in the work directory still gets read,
        # and pydantic-settings lets environment variables win over it.
        DATABASE_URL=f"sqlite:///{database}",
        DB_USER="",
        DB_PASSWORD="",
        DB_HOST="",
        DB_NAME="",
        INSTAGRAM_GRAPH_URL=f"http://127.0.0.1:{sandbox_port}",
        INSTAGRAM_SEND_MESSAGE_URL="",
        INSTAGRAM_USER_TOKEN=USER_TOKEN,
        INSTAGRAM_APP_SECRET=demo_secrets.app_secret,
        INSTAGRAM_WEBHOOK_TOKEN=demo_secrets.verify_token,
        INSTAGRAM_ACCOUNT_ID=ACCOUNT_ID,
        API_KEY=demo_secrets.api_key,
        ALLOW_OPEN_API="",
        # The sandbox's CDN (attachments) is on loopback: its links are checked and refreshed
        # like Meta's.
        MEDIA_ALLOWED_HOSTS="127.0.0.1",
        SANDBOX_LATENCY_MS="0",
        SANDBOX_ECHO_MODE="after",
    )
    return environment


def _start_demo(
    *,
    port: int,
    sandbox_port: int,
    environment: dict[str, str],
    workdir: Path,
    database: Path,
    demo_secrets: DemoSecrets,
    out: Callable[[str], object],
) -> DemoResult:
    """The sandbox and the service started, answering, with the customers written in; on any
    failure everything started is stopped again."""
    processes: list[DemoProcess] = []
    try:
        sandbox = _start(
            name="sandbox",
            module_args=[
                *("app.sandbox", "--port", str(sandbox_port)),
                *("--webhook-url", f"http://127.0.0.1:{port}/webhook"),
            ],
            environment=environment,
            workdir=workdir,
        )
        processes.append(sandbox)
        service = _start(
            name="service",
            module_args=["uvicorn", "app.main:app", "--host", "127.0.0.1", "--port", str(port)],
            environment=environment,
            workdir=workdir,
        )
        processes.append(service)
        result = DemoResult(
            service_url=f"http://127.0.0.1:{port}",
            sandbox_url=f"http://127.0.0.1:{sandbox_port}",
            database=database,
            customers={},
            processes=processes,
            demo_secrets=demo_secrets,
        )
        _wait_until_answering(
            {
                sandbox: f"{result.sandbox_url}/_sandbox/config",
                service: f"{result.service_url}/ready",
            },
            processes=processes,
            out=out,
        )
        _add_second_account(result)
        result.customers = _customers_write_in(result.sandbox_url)
        _wait_for_profiles(result)
    except BaseException:
        _stop_all(processes)
        raise
    return result


def run_demo(
    *,
    port: int = 8000,
    sandbox_port: int = 8001,
    workdir: Path | None = None,
    wait: bool = True,
    out: Callable[[str], object] = print_now,
) -> DemoResult:
    """Start the sandbox and the service, let the customers write in, print what to try.

    With `wait`, serve until Ctrl-C (or SIGTERM) and stop; otherwise return the running demo,
    which the caller must `stop()`. Raises DemoError, having stopped everything, on failure.
    """
    workdir = (workdir or REPO_ROOT).resolve()
    database = workdir / DATABASE_FILE
    with _stop_on_sigterm(enabled=wait):
        for wanted in (port, sandbox_port):
            _ensure_port_is_free(wanted)
        _remove_database(database)
        demo_secrets = DemoSecrets.generate()
        environment = demo_environment(
            database=database, sandbox_port=sandbox_port, demo_secrets=demo_secrets
        )
        _migrate(environment=environment, workdir=workdir, out=out)
        result = _start_demo(
            port=port,
            sandbox_port=sandbox_port,
            environment=environment,
            workdir=workdir,
            database=database,
            demo_secrets=demo_secrets,
            out=out,
        )
        _print_what_to_try(result, out=out)
        if wait:
            with result:
                result.wait_until_interrupted(out=out)
        return result


def _stop_all(processes: list[DemoProcess]) -> None:
    """Terminate every process first, then wait for each: they shut down in parallel."""
    for process in processes:
        if process.is_running():
            process.popen.terminate()
    for process in processes:
        process.stop()


def _fail(
    process: DemoProcess,
    *,
    reason: str,
    processes: list[DemoProcess],
    out: Callable[[str], object],
) -> NoReturn:
    """Stop everything, show what `process` printed, raise DemoError(reason)."""
    _stop_all(processes)
    out(f"----- output of the {process.name} -----")
    out(process.printed.rstrip() or "(nothing)")
    out(f"----- end of the {process.name}'s output -----")
    raise DemoError(reason)


def _ensure_port_is_free(port: int) -> None:
    # Otherwise a server already on the port (a `fab runserver`?) could answer the readiness
    # probe while the demo's own process dies on "address already in use".
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError as error:
            raise DemoError(
                f"port {port} is already in use ({error.strerror}); stop what listens there or "
                "pick other ports: fab demo --port 8010 --sandbox-port 8011"
            ) from None


def _remove_database(database: Path) -> None:
    for suffix in ("", "-wal", "-shm", "-journal"):
        database.with_name(database.name + suffix).unlink(missing_ok=True)


def _migrate(*, environment: dict[str, str], workdir: Path, out: Callable[[str], object]) -> None:
    command = [sys.executable, "-m", "alembic", "-c", str(REPO_ROOT / "alembic.ini")]
    completed = subprocess.run(  # noqa: S603  # our interpreter, fixed arguments
        [*command, "upgrade", "head"],
        env=environment,
        cwd=workdir,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=STARTUP_TIMEOUT_SECONDS,
        check=False,
    )
    if completed.returncode != 0:
        out(completed.stdout + completed.stderr)
        raise DemoError(f"the migrations failed (alembic exited with {completed.returncode})")


def _start(
    *, name: str, module_args: list[str], environment: dict[str, str], workdir: Path
) -> DemoProcess:
    # Outlives this function: DemoProcess.stop() closes it, once the process is gone.
    log = tempfile.TemporaryFile()  # noqa: SIM115
    popen = subprocess.Popen(  # noqa: S603  # our interpreter, fixed arguments
        [sys.executable, "-m", *module_args],
        env=environment,
        cwd=workdir,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    return DemoProcess(name=name, popen=popen, log=log)


def _wait_until_answering(
    probes: dict[DemoProcess, str], *, processes: list[DemoProcess], out: Callable[[str], object]
) -> None:
    """Until each process answers 200 on its URL; fail if one exits or time runs out."""
    deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
    waiting = dict(probes)
    while waiting:
        for process, url in list(waiting.items()):
            if not process.is_running():
                reason = f"the {process.name} exited with code {process.popen.returncode}"
                _fail(process, reason=reason, processes=processes, out=out)
            try:
                if requests.get(url, timeout=1).status_code == 200:
                    del waiting[process]
            except requests.RequestException:
                pass  # not listening yet
        if waiting and time.monotonic() > deadline:
            process, url = next(iter(waiting.items()))
            reason = f"the {process.name} did not answer {url} within {STARTUP_TIMEOUT_SECONDS:g} s"
            _fail(process, reason=reason, processes=processes, out=out)
        time.sleep(0.1)


def _add_second_account(result: "DemoResult") -> None:
    """A second business account: played by the sandbox with a token of its own, added to
    the service through its accounts API (as `fab account-add` would)."""
    with requests.Session() as http:
        account = _control(
            http,
            f"{result.sandbox_url}/_sandbox/accounts",
            body={"id": SECOND_ACCOUNT_ID, "username": SECOND_ACCOUNT_USERNAME},
        )
        http.headers["Authorization"] = f"Bearer {result.api_key}"
        _control(
            http,
            f"{result.service_url}/api/v1/accounts",
            body={"access_token": account["access_token"]},
        )


def _customers_write_in(sandbox_url: str) -> dict[str, dict[str, Any]]:
    """Create the scripted customers and deliver their messages; by username."""
    customers = {}
    with requests.Session() as http:
        for scripted in CUSTOMERS:
            customer = _control(
                http,
                f"{sandbox_url}/_sandbox/customers",
                body={
                    "username": scripted.username,
                    "name": scripted.name,
                    "account_id": scripted.account_id,
                },
            )
            for text in scripted.messages:
                written = _control(
                    http,
                    f"{sandbox_url}/_sandbox/customers/{customer['id']}/messages",
                    body={"text": text},
                )
                delivery = written["delivery"]
                if delivery["status_code"] != 200:
                    raise DemoError(
                        f"the service did not take {scripted.username}'s message: {delivery}"
                    )
            customers[scripted.username] = customer
    return customers


def _wait_for_profiles(result: DemoResult) -> None:
    """Until the service's background fetcher has the customers' profiles (usernames show)."""
    deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
    with requests.Session() as http:
        http.headers["Authorization"] = f"Bearer {result.api_key}"
        for username, customer in result.customers.items():
            url = f"{result.service_url}/messages?user_id={customer['id']}"
            while (
                http.get(url, timeout=HTTP_TIMEOUT_SECONDS).json()[0]["sender_username"] != username
            ):
                if time.monotonic() > deadline:
                    raise DemoError(f"the service did not fetch {username}'s profile in time")
                time.sleep(0.1)


def _control(http: requests.Session, url: str, *, body: dict[str, Any]) -> dict[str, Any]:
    """POST to the sandbox's control API; its answer, or DemoError when it refuses."""
    response = http.post(url, json=body, timeout=HTTP_TIMEOUT_SECONDS)
    if not response.ok:
        raise DemoError(f"the sandbox answered {response.status_code} to {url}: {response.text}")
    answer: dict[str, Any] = response.json()
    return answer


def _print_what_to_try(result: DemoResult, *, out: Callable[[str], object]) -> None:
    service, sandbox = result.service_url, result.sandbox_url
    first = CUSTOMERS[0].username
    user = result.customers[first]["id"]
    json_header = "-H 'Content-Type: application/json'"
    key_header = f"-H 'Authorization: Bearer {result.api_key}'"
    lines = [
        "",
        "insta-service demo is running (Ctrl-C stops it).",
        f"  service   {service}   API docs: {service}/docs",
        f"  sandbox   {sandbox}   (plays graph.instagram.com; drive it under /_sandbox)",
        f"  database  {result.database}",
        f"  API key   {result.api_key}   (made for this run; every call but /webhook needs it)",
        f"  accounts  {ACCOUNT_ID} (the environment's) and {SECOND_ACCOUNT_ID} "
        f"(@{SECOND_ACCOUNT_USERNAME}, added through POST /api/v1/accounts)",
        *(
            f"  customer  {scripted.username}, IGSID {result.customers[scripted.username]['id']}: "
            f"wrote {len(scripted.messages)} message(s) to account {scripted.account_id}, "
            "delivered to the service"
            for scripted in CUSTOMERS
        ),
        "",
        "Try:",
        f"  curl {key_header} '{service}/messages?user_id={user}'",
        f"  curl {key_header} '{service}/user?user_id={user}'",
        f"  curl -X POST {key_header} '{service}/message/send?user_id={user}' {json_header} \\",
        """       -d '{"message": {"text": "Yes, size M is in stock!"}}'""",
        f"  # {first} writes again: the sandbox signs the webhook and delivers it to the service",
        f"  curl -X POST '{sandbox}/_sandbox/customers/{user}/messages' {json_header} \\",
        """       -d '{"text": "Great, I will take it."}'""",
        f"  curl '{sandbox}/_sandbox/sent'   # what the service sent through the Send API",
        f"  curl {key_header} '{service}/api/v1/accounts'   # both accounts, tokens, counts",
        f"  curl {key_header} '{service}/api/v1/conversations?account_id={SECOND_ACCOUNT_ID}'",
        "  # every event as it happens (add --forward-to http://localhost:3000/hooks to get",
        "  # them POSTed, signed, like a webhook endpoint would):",
        f"  fab listen --url {service} --api-key {result.api_key}",
        "",
    ]
    for line in lines:
        out(line)


@contextmanager
def _stop_on_sigterm(*, enabled: bool) -> Iterator[None]:
    # SIGTERM kills Python without running `finally`, which would orphan the subprocesses:
    # turn it into KeyboardInterrupt so the demo stops them as on Ctrl-C.
    if not enabled or threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
