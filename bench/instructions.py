"""`python -m bench.instructions`: CPU instructions per request of the service, counted by
callgrind (valgrind), one request at a time.

req/s on a shared VM moves by ±25 % from one run to the next, whatever the code; an
instruction count does not (it is the same for the same code, inputs and environment,
whatever else the machine is doing). So a change of a few percent on a hot path is measured
here: the service runs under `valgrind --tool=callgrind` with instrumentation off, each kind of
request is sent `--requests` times after a warm-up, and only those requests are counted (the
process's every thread: the request's thread hand-offs, and the background workers' idle
polls meanwhile, which the sequential pace makes a little larger than under load).

Needs valgrind (`apt-get install valgrind`), PostgreSQL like `python -m bench`, and patience:
Python under callgrind runs ~50 times slower (about ten minutes with the defaults).
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import requests
from sqlalchemy import create_engine

from app.sandbox import webhooks
from app.sandbox.clock import now_ms
from app.security import sign_body
from bench import database
from bench.pools import customer_id
from bench.processes import BenchError, Processes, free_port
from bench.stack import (
    ACCOUNT_ID,
    API_HEADERS,
    APP_SECRET,
    UVICORN_FLAGS,
    base_environment,
    service_settings,
    start_sandbox,
)

HISTORY_CUSTOMER = customer_id(900_000)
SEND_CUSTOMER = customer_id(800_000)
WARMUP = 20
# Under valgrind the service starts in a minute or two, not seconds.
STARTUP_SECONDS = 900.0

Request = Callable[[requests.Session, int], requests.Response]


def _deliveries(events: int) -> Request:
    start = now_ms()

    def deliver(http: requests.Session, number: int) -> requests.Response:
        items = [
            webhooks.message_item(
                customer_id=customer_id((number * events + index) % 1000),
                account_id=ACCOUNT_ID,
                mid=f"instructions-{events}-{number}-{index}",
                timestamp_ms=start + number * events + index,
                text=f"bench message {number}",
            )
            for index in range(events)
        ]
        body = webhooks.encode(webhooks.delivery(account_id=ACCOUNT_ID, items=items))
        signature = sign_body(secret=APP_SECRET, body=body)
        return http.post(
            "/webhook",
            data=body,
            headers={"X-Hub-Signature-256": signature, "Content-Type": "application/json"},
        )

    return deliver


def _get(path: str) -> Request:
    return lambda http, _: http.get(path, headers=API_HEADERS)


def _send(http: requests.Session, number: int) -> requests.Response:
    return http.post(
        f"/api/v1/conversations/{SEND_CUSTOMER}/messages",
        json={"text": f"reply {number}"},
        headers=API_HEADERS,
    )


KINDS: dict[str, tuple[str, Request]] = {
    "health": ("GET /health", _get("/health")),
    "ingest-1": ("POST /webhook, 1 new message", _deliveries(1)),
    "ingest-10": ("POST /webhook, 10 new messages", _deliveries(10)),
    "messages": ("GET /messages (50 latest)", _get(f"/messages?user_id={HISTORY_CUSTOMER}")),
    "v1-messages": (
        "GET /api/v1/conversations/{id}/messages (50)",
        _get(f"/api/v1/conversations/{HISTORY_CUSTOMER}/messages"),
    ),
    "send": ("POST /api/v1/conversations/{id}/messages (Meta at 0 ms)", _send),
}


class _Session(requests.Session):
    def __init__(self, base: str) -> None:
        super().__init__()
        self.base = base

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("timeout", 120)
        return super().request(method, f"{self.base}{url!s}", *args, **kwargs)


def _callgrind(pid: int, *args: str) -> None:
    subprocess.run(["callgrind_control", *args, str(pid)], check=True, capture_output=True)  # noqa: S603, S607


def _instructions(dump: Path) -> int:
    for line in dump.read_text().splitlines():
        if line.startswith(("summary:", "totals:")):
            return int(line.split()[1])
    raise BenchError(f"no instruction total in {dump}")


def _dumps(directory: Path) -> Iterator[Path]:
    yield from sorted(directory.glob("callgrind.out*"), key=lambda path: path.stat().st_mtime)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=100, help="counted per kind (100)")
    parser.add_argument("--kind", action="append", choices=list(KINDS), help="repeatable")
    parser.add_argument(
        "--database-url",
        default=os.environ.get("BENCH_DATABASE_URL", database.DEFAULT_DATABASE_URL),
    )
    args = parser.parse_args(argv)
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        raise SystemExit("valgrind is not installed (apt-get install valgrind)")
    kinds = args.kind or list(KINDS)
    database.ensure_database(args.database_url)
    database.migrate(args.database_url)
    engine = create_engine(args.database_url)
    database.truncate(engine)
    database.add_accounts(engine, [ACCOUNT_ID])
    database.add_profiles(
        engine,
        [
            (HISTORY_CUSTOMER, "bench_customer"),
            (SEND_CUSTOMER, "send_customer"),
            (ACCOUNT_ID, "biz"),
        ],
    )
    database.add_conversation(engine, customer_id=HISTORY_CUSTOMER, messages=200)
    database.add_conversation(engine, customer_id=SEND_CUSTOMER, messages=1, vacuum=False)
    engine.dispose()

    with (
        tempfile.TemporaryDirectory(prefix="bench-instructions-") as workdir,
        Processes(environment=base_environment(), workdir=Path(workdir)) as running,
    ):
        sandbox = start_sandbox(running, webhook_url="http://127.0.0.1:9/webhook")
        sandbox.add_customer(SEND_CUSTOMER, username="send_customer")
        port = free_port()
        out = Path(workdir) / "callgrind"
        out.mkdir()
        print("starting the service under callgrind (a minute or two)…", flush=True)
        service = running.start(
            "service",
            [
                *("valgrind", "--tool=callgrind", "--instr-atstart=no"),
                f"--callgrind-out-file={out}/callgrind.out",
                *(sys.executable, "-m", "uvicorn", "--host", "127.0.0.1", "--port", str(port)),
                *UVICORN_FLAGS,
                "app.main:app",
            ],
            ready_url=f"http://127.0.0.1:{port}/ready",
            ready_timeout=STARTUP_SECONDS,
            extra_environment=service_settings(
                database_url=args.database_url,
                graph_url=sandbox.url,
                overrides={"PROFILE_WORKER_ENABLED": "false"},
            ),
        )
        http = _Session(f"http://127.0.0.1:{port}")
        pid = service.popen.pid
        print(f"{'kind':<12} {'instructions/request':>22}  what")
        for kind in kinds:
            description, request = KINDS[kind]
            for number in range(WARMUP):
                _checked(request(http, -1 - number), kind)
            _callgrind(pid, "--instr=on")
            _callgrind(pid, "--zero")
            for number in range(args.requests):
                _checked(request(http, number), kind)
            _callgrind(pid, "--dump")  # (switching instrumentation off first loses the counts)
            _callgrind(pid, "--instr=off")
            dump = list(_dumps(out))[-1]
            per_request = _instructions(dump) / args.requests
            print(f"{kind:<12} {per_request:>22,.0f}  {description}", flush=True)


def _checked(response: requests.Response, kind: str) -> None:
    if response.status_code >= 300:
        raise BenchError(f"{kind}: {response.status_code} {response.text[:300]}")


if __name__ == "__main__":
    main()
