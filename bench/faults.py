"""`python -m bench.faults [--only NAME]`: fault drills against real processes on loopback.

Each drill is bounded in time, stops by itself, and reports counts:

- kill-9: the service is killed with SIGKILL while deliveries stream in, then restarted;
  every delivery acknowledged with 200 is stored, none twice (then the unacknowledged ones
  are redelivered, as Meta would, and everything is stored exactly once);
- postgres-restart: PostgreSQL restarts while deliveries stream in; answers are 503 during
  the outage, the service recovers without a restart and loses nothing it acknowledged;
- graph-hang: the Graph API hangs; sends fail with 504 within the configured read timeout
  while webhook intake and history reads keep answering (their latency is measured);
  graph-hang-64 does the same with 64 concurrent senders, graph-hang-96 with 96, more than
  the Graph calls a process lets run at once (INSTAGRAM_MAX_CONCURRENCY, 64): the others are
  answered 503 instagram_busy within INSTAGRAM_QUEUE_TIMEOUT, and intake and reads keep
  their threads;
- replicas: two service processes on one database get the same deliveries at the same time;
  every event stored once, no 5xx, no profile fetched twice;
- events-kill-9 and events-replicas: events out under the same faults (bench/event_drills.py):
  every acknowledged change's event reaches a subscribed endpoint, and two replicas make
  each delivery attempt once.

The PostgreSQL drill restarts the local cluster (`pg_ctlcluster ... restart`): every other
connection to it is cut too. It never runs in the test suite.
"""

import argparse
import itertools
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import requests
from sqlalchemy import Engine, create_engine, make_url

from app.config import Settings
from app.sandbox import webhooks
from app.sandbox.clock import now_ms
from app.security import sign_body
from bench import database
from bench.event_drills import events_kill_9, events_replicas
from bench.pools import customer_id
from bench.processes import (
    BenchError,
    Process,
    Processes,
    free_port,
    interrupted_by_sigterm,
)
from bench.stack import (
    ACCOUNT_ID,
    API_HEADERS,
    APP_SECRET,
    Sandbox,
    base_environment,
    base_url,
    start_sandbox,
    start_service,
)

CLIENT_TIMEOUT_SECONDS = 10.0
# The service's defaults, which the drill keeps.
GRAPH_MAX_CONCURRENCY: int = Settings.model_fields["instagram_max_concurrency"].default
GRAPH_QUEUE_TIMEOUT_SECONDS: float = Settings.model_fields["instagram_queue_timeout"].default
GRAPH_READ_TIMEOUT_SECONDS = 2.0


@dataclass
class DrillResult:
    """The outcome of one drill: passed or not, with its counts."""

    name: str
    passed: bool
    counts: dict[str, object]
    problems: list[str] = field(default_factory=list)


# --- a stream of deliveries, each with a mid of its own -----------------------------------------


def signed_delivery(mid: str, *, customer: str, text: str = "fault drill") -> tuple[bytes, str]:
    """The body of a one-message delivery and its X-Hub-Signature-256."""
    body = webhooks.encode(
        webhooks.delivery(
            account_id=ACCOUNT_ID,
            items=[
                webhooks.message_item(
                    customer_id=customer,
                    account_id=ACCOUNT_ID,
                    mid=mid,
                    timestamp_ms=now_ms(),
                    text=text,
                )
            ],
        )
    )
    return body, sign_body(secret=APP_SECRET, body=body)


def deliver(session: requests.Session, url: str, mid: str, *, customer: str) -> int | str:
    """POST one delivery; its status code, or the name of the connection error."""
    body, signature = signed_delivery(mid, customer=customer)
    try:
        response = session.post(
            f"{url}/webhook",
            data=body,
            headers={"Content-Type": "application/json", "X-Hub-Signature-256": signature},
            timeout=CLIENT_TIMEOUT_SECONDS,
        )
    except requests.RequestException as error:
        return type(error).__name__
    return response.status_code


@dataclass
class Outcome:
    """One delivery attempt."""

    mid: str
    result: int | str  # status code, or a connection error's name
    at: float  # monotonic seconds, when the answer came
    seconds: float  # how long it took


class DeliveryStream:
    """Threads POSTing new deliveries to `url()` until stopped; every outcome is kept.

    `url` is a callable so a drill can point the stream at a restarted process.
    """

    def __init__(
        self, url: Callable[[], str], *, prefix: str, threads: int = 8, customers: int = 50
    ) -> None:
        self.url = url
        self.prefix = prefix
        self.customers = customers
        self.outcomes: list[Outcome] = []
        self._lock = threading.Lock()
        self._numbers = itertools.count()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]

    def _run(self) -> None:
        with requests.Session() as session:
            while not self._stop.is_set():
                number = next(self._numbers)
                mid = f"{self.prefix}-{number}"
                started = time.monotonic()
                result = deliver(
                    session, self.url(), mid, customer=customer_id(number % self.customers)
                )
                finished = time.monotonic()
                with self._lock:
                    self.outcomes.append(Outcome(mid, result, finished, finished - started))
                if not isinstance(result, int):
                    time.sleep(0.05)  # a refused connection answers at once: do not spin

    def start(self) -> "DeliveryStream":
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=CLIENT_TIMEOUT_SECONDS + 5)

    @property
    def acknowledged(self) -> list[str]:
        return [outcome.mid for outcome in self.outcomes if outcome.result == 200]

    @property
    def unacknowledged(self) -> list[str]:
        return [outcome.mid for outcome in self.outcomes if outcome.result != 200]

    def results(self) -> Counter[str]:
        return Counter(str(outcome.result) for outcome in self.outcomes)


def stored_mids(engine: Engine, prefix: str) -> Counter[str]:
    """How many rows each mid with this prefix has."""
    with engine.connect() as connection:
        rows = connection.exec_driver_sql(
            "SELECT mid, count(*) FROM messages WHERE mid LIKE %(prefix)s GROUP BY mid",
            {"prefix": f"{prefix}-%"},
        )
        return Counter({mid: number for mid, number in rows})


def check_stored(
    engine: Engine, *, prefix: str, acknowledged: Sequence[str], problems: list[str]
) -> dict[str, int]:
    """Every acknowledged mid stored, none twice; the counts for the report."""
    stored = stored_mids(engine, prefix)
    lost = [mid for mid in acknowledged if mid not in stored]
    duplicated = [mid for mid, rows in stored.items() if rows > 1]
    if lost:
        problems.append(f"{len(lost)} acknowledged deliveries are not stored, e.g. {lost[:3]}")
    if duplicated:
        problems.append(f"{len(duplicated)} mids stored more than once, e.g. {duplicated[:3]}")
    return {
        "acknowledged": len(acknowledged),
        "stored": len(stored),
        "lost": len(lost),
        "stored twice": len(duplicated),
    }


def redeliver(url: str, mids: Sequence[str], *, customers: int = 50) -> Counter[str]:
    """Deliver these mids again, as Meta retries what it got no 200 for."""
    results: Counter[str] = Counter()
    with requests.Session() as session:
        for mid in mids:
            number = int(mid.rsplit("-", 1)[1])
            results[str(deliver(session, url, mid, customer=customer_id(number % customers)))] += 1
    return results


# --- the drills ----------------------------------------------------------------------------------


@dataclass
class Drills:
    """What the drills share: the database, the processes, where to print progress."""

    engine: Engine
    database_url: str
    processes: Processes
    say: Callable[[str], object]

    def sandbox(self, *, latency_ms: int = 0) -> Sandbox:
        return start_sandbox(
            self.processes, webhook_url="http://127.0.0.1:9/webhook", latency_ms=latency_ms
        )

    def fresh(self) -> None:
        database.truncate(self.engine)


def kill_9(drills: Drills) -> DrillResult:
    drills.fresh()
    sandbox = drills.sandbox()
    port = free_port()
    overrides = {"PROFILE_WORKER_ENABLED": "false"}

    def service() -> Process:
        return start_service(
            drills.processes,
            database_url=drills.database_url,
            graph_url=sandbox.url,
            port=port,
            overrides=overrides,
            cpus=None,
        )

    process = service()
    url = base_url(process)
    stream = DeliveryStream(lambda: url, prefix="kill9").start()
    time.sleep(3)
    killed_at = time.monotonic()
    process.kill()
    drills.say(f"  killed the service (pid {process.pid}) with SIGKILL")
    drills.processes.stop(process)
    time.sleep(1)
    restarted = service()
    restarted_at = time.monotonic()
    drills.say(f"  restarted it in {restarted_at - killed_at:.1f} s")
    time.sleep(3)
    stream.stop()
    problems: list[str] = []
    counts: dict[str, object] = {
        "attempts": len(stream.outcomes),
        "answers": dict(stream.results()),
    }
    counts.update(
        check_stored(
            drills.engine, prefix="kill9", acknowledged=stream.acknowledged, problems=problems
        )
    )
    in_flight_stored = [
        mid for mid in stream.unacknowledged if mid in stored_mids(drills.engine, "kill9")
    ]
    counts["unacknowledged but stored"] = len(in_flight_stored)
    retried = redeliver(base_url(restarted), stream.unacknowledged)
    counts["redelivered (Meta's retry)"] = dict(retried)
    everything = [outcome.mid for outcome in stream.outcomes]
    final = check_stored(drills.engine, prefix="kill9", acknowledged=everything, problems=problems)
    counts["stored after retries"] = final["stored"]
    if set(retried) != {"200"}:
        problems.append(f"redeliveries were not all acknowledged: {dict(retried)}")
    unexpected = {
        result: number
        for result, number in stream.results().items()
        if result.isdigit() and result != "200"
    }
    if unexpected:
        problems.append(f"answers other than 200 from a live service: {unexpected}")
    drills.processes.stop_all()
    return DrillResult("kill-9", not problems, counts, problems)


def _postgres_cluster() -> tuple[str, str]:
    versions = sorted(os.listdir("/etc/postgresql")) if os.path.isdir("/etc/postgresql") else []
    if not versions:
        raise BenchError("no local PostgreSQL cluster (/etc/postgresql is empty)")
    return versions[-1], "main"


def restart_postgres() -> float:
    """Restart the local cluster; the seconds it took."""
    version, cluster = _postgres_cluster()
    started = time.monotonic()
    subprocess.run(  # noqa: S603  # fixed arguments
        ["pg_ctlcluster", "--skip-systemctl-redirect", version, cluster, "restart"],  # noqa: S607
        check=True,
        capture_output=True,
        timeout=120,
    )
    return time.monotonic() - started


def postgres_restart(drills: Drills) -> DrillResult:
    host = make_url(drills.database_url).host or "localhost"
    if host not in ("127.0.0.1", "localhost", "::1"):
        raise BenchError(f"PostgreSQL at {host} is not local: it cannot be restarted here")
    drills.fresh()
    sandbox = drills.sandbox()
    process = start_service(
        drills.processes,
        database_url=drills.database_url,
        graph_url=sandbox.url,
        overrides={"PROFILE_WORKER_ENABLED": "false"},
        cpus=None,
    )
    url = base_url(process)
    stream = DeliveryStream(lambda: url, prefix="pgrestart").start()
    time.sleep(3)
    outage_started = time.monotonic()
    seconds = restart_postgres()
    drills.say(f"  PostgreSQL restarted in {seconds:.1f} s")
    time.sleep(5)
    stream.stop()
    problems: list[str] = []
    if not process.is_running():
        problems.append("the service process died")
    results = stream.results()
    counts: dict[str, object] = {
        "attempts": len(stream.outcomes),
        "answers": dict(results),
        "restart seconds": round(seconds, 1),
    }
    bad = {result: number for result, number in results.items() if result not in ("200", "503")}
    if bad:
        problems.append(f"answers other than 200 and 503: {bad}")
    if not results.get("503"):
        counts["note"] = "no request fell in the outage"
    after = [outcome for outcome in stream.outcomes if outcome.at > outage_started + seconds]
    first_ok = min((outcome.at for outcome in after if outcome.result == 200), default=None)
    if first_ok is None:
        problems.append("the service did not recover without a restart")
    else:
        counts["first 200 after PostgreSQL was back (s)"] = round(
            max(0.0, first_ok - outage_started - seconds), 2
        )
    slow = max((outcome.seconds for outcome in stream.outcomes), default=0.0)
    counts["slowest answer (s)"] = round(slow, 2)
    counts.update(
        check_stored(
            drills.engine, prefix="pgrestart", acknowledged=stream.acknowledged, problems=problems
        )
    )
    drills.processes.stop_all()
    return DrillResult("postgres-restart", not problems, counts, problems)


def _latencies(samples: Sequence[float]) -> str:
    if not samples:
        return "none"
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return (
        f"n={len(ordered)} p50 {1000 * statistics.median(ordered):.0f} ms,"
        f" p99 {1000 * p99:.0f} ms, max {1000 * ordered[-1]:.0f} ms"
    )


def graph_hang(drills: Drills, *, senders: int = 16) -> DrillResult:
    drills.fresh()
    sandbox = drills.sandbox()
    customers = [customer_id(700_000 + number) for number in range(senders)]
    database.add_profiles(
        drills.engine, [(ACCOUNT_ID, "bench_business")] + [(c, f"hang_{c}") for c in customers]
    )
    for customer in customers:
        database.add_conversation(drills.engine, customer_id=customer, messages=20, vacuum=False)
        sandbox.add_customer(customer, username=f"hang_{customer}")
    process = start_service(
        drills.processes,
        database_url=drills.database_url,
        graph_url=sandbox.url,
        # One account, whose own slots would turn senders away first (16 by default): here it
        # may hold every slot of the process, the drill's subject.
        overrides={
            "INSTAGRAM_READ_TIMEOUT": str(GRAPH_READ_TIMEOUT_SECONDS),
            "INSTAGRAM_ACCOUNT_MAX_CONCURRENCY": str(GRAPH_MAX_CONCURRENCY),
        },
        cpus=None,
    )
    url = base_url(process)
    # Every send hangs for a minute (far past the read timeout) for the rest of the drill.
    sandbox.control("POST", "/faults", json={"kind": "send", "delay_seconds": 60, "times": 10_000})
    stop = threading.Event()
    sends: list[tuple[int | str, float]] = []
    reads: list[tuple[int | str, float]] = []
    lock = threading.Lock()

    def send_loop(customer: str) -> None:
        with requests.Session() as session:
            while not stop.is_set():
                started = time.monotonic()
                try:
                    response = session.post(
                        f"{url}/api/v1/conversations/{customer}/messages",
                        json={"text": "are you there?"},
                        headers=API_HEADERS,
                        timeout=CLIENT_TIMEOUT_SECONDS,
                    )
                    result: int | str = response.status_code
                    if response.status_code == 503:
                        result = f"503 {response.json().get('code')}"
                except requests.RequestException as error:
                    result = type(error).__name__
                with lock:
                    sends.append((result, time.monotonic() - started))

    def read_loop() -> None:
        with requests.Session() as session:
            while not stop.is_set():
                customer = customers[len(reads) % len(customers)]
                started = time.monotonic()
                try:
                    result: int | str = session.get(
                        f"{url}/messages",
                        params={"user_id": customer},
                        headers=API_HEADERS,
                        timeout=CLIENT_TIMEOUT_SECONDS,
                    ).status_code
                except requests.RequestException as error:
                    result = type(error).__name__
                with lock:
                    reads.append((result, time.monotonic() - started))
                time.sleep(0.02)

    intake = DeliveryStream(lambda: url, prefix="hang", threads=2)
    threads = [threading.Thread(target=send_loop, args=(c,), daemon=True) for c in customers]
    threads.append(threading.Thread(target=read_loop, daemon=True))
    for thread in threads:
        thread.start()
    time.sleep(1)  # the senders are all hanging now
    intake.start()
    time.sleep(6)
    intake.stop()
    stop.set()
    for thread in threads:
        thread.join(timeout=CLIENT_TIMEOUT_SECONDS + 5)
    problems: list[str] = []
    send_results = Counter(str(result) for result, _ in sends)
    read_results = Counter(str(result) for result, _ in reads)
    slowest_send = max((seconds for _, seconds in sends), default=0.0)
    # A send waits at most the queue timeout for a Graph slot, then the read timeout.
    limit = GRAPH_QUEUE_TIMEOUT_SECONDS + GRAPH_READ_TIMEOUT_SECONDS + 1.0
    # With more senders than slots the rest are turned away at once: 503 instagram_busy.
    allowed = {"504"} if senders <= GRAPH_MAX_CONCURRENCY else {"504", "503 instagram_busy"}
    if "504" not in send_results or not set(send_results) <= allowed:
        problems.append(f"sends answered {dict(send_results)}, expected {sorted(allowed)}")
    if slowest_send > limit:
        problems.append(
            f"a send took {slowest_send:.1f} s (queue timeout "
            f"{GRAPH_QUEUE_TIMEOUT_SECONDS:g} s + read timeout {GRAPH_READ_TIMEOUT_SECONDS:g} s)"
        )
    if set(read_results) != {"200"}:
        problems.append(f"history reads answered {dict(read_results)}")
    if set(intake.results()) != {"200"}:
        problems.append(f"webhook deliveries answered {dict(intake.results())}")
    intake_seconds = [outcome.seconds for outcome in intake.outcomes]
    read_seconds = [seconds for _, seconds in reads]
    for what, samples in (("webhook intake", intake_seconds), ("history reads", read_seconds)):
        if samples and max(samples) > 1.0:
            problems.append(f"{what} slowed down to {max(samples):.2f} s during the hang")
    failed_rows = database.count(
        drills.engine,
        "SELECT count(*) FROM messages WHERE source = 'api' AND status = 'failed'",
    )
    pending_rows = database.count(
        drills.engine,
        "SELECT count(*) FROM messages WHERE source = 'api' AND status = 'pending'",
    )
    counts: dict[str, object] = {
        "concurrent senders": senders,
        "sends": dict(send_results),
        "send seconds": _latencies([seconds for _, seconds in sends]),
        "sends stored failed / pending": f"{failed_rows} / {pending_rows}",
        "webhook intake": f"{dict(intake.results())}, {_latencies(intake_seconds)}",
        "history reads": f"{dict(read_results)}, {_latencies(read_seconds)}",
        "Graph send calls": len(sandbox.calls("send")),
    }
    if pending_rows:
        problems.append(f"{pending_rows} sends left pending")
    drills.processes.stop_all()
    return DrillResult(f"graph-hang ({senders} senders)", not problems, counts, problems)


def replicas(drills: Drills) -> DrillResult:
    drills.fresh()
    sandbox = drills.sandbox(latency_ms=20)
    customers = [customer_id(600_000 + number) for number in range(40)]
    for customer in customers:
        sandbox.add_customer(customer, username=f"replica_{customer}")
    first = start_service(
        drills.processes, database_url=drills.database_url, graph_url=sandbox.url, cpus=None
    )
    second = start_service(
        drills.processes,
        database_url=drills.database_url,
        graph_url=sandbox.url,
        cpus=None,
        name="second service",
    )
    bodies = []
    for number in range(400):
        body, signature = signed_delivery(
            f"replica-{number}", customer=customers[number % len(customers)]
        )
        bodies.append((body, signature))
    targets = [(url, body) for body in bodies for url in (base_url(first), base_url(second))]
    results: Counter[str] = Counter()
    lock = threading.Lock()
    work = iter(targets)

    def worker() -> None:
        with requests.Session() as session:
            for url, (body, signature) in _locked(work, lock):
                try:
                    result: int | str = session.post(
                        f"{url}/webhook",
                        data=body,
                        headers={
                            "Content-Type": "application/json",
                            "X-Hub-Signature-256": signature,
                        },
                        timeout=CLIENT_TIMEOUT_SECONDS,
                    ).status_code
                except requests.RequestException as error:
                    result = type(error).__name__
                with lock:
                    results[str(result)] += 1

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    problems: list[str] = []
    if set(results) != {"200"}:
        problems.append(f"answers other than 200: {dict(results)}")
    counts: dict[str, object] = {
        "deliveries (each sent to both)": len(bodies),
        "answers": dict(results),
    }
    counts.update(
        check_stored(
            drills.engine,
            prefix="replica",
            acknowledged=[f"replica-{n}" for n in range(len(bodies))],
            problems=problems,
        )
    )
    deadline = time.monotonic() + 30
    pending = -1
    while time.monotonic() < deadline:
        pending = database.count(
            drills.engine, "SELECT count(*) FROM users WHERE fetched_at IS NULL"
        )
        if pending == 0:
            break
        time.sleep(0.2)
    fetches = Counter(str(call["path"]) for call in sandbox.calls("profile"))
    twice = {path: number for path, number in fetches.items() if number > 1}
    counts["profile fetches"] = sum(fetches.values())
    counts["customers"] = len(customers)
    counts["profiles fetched twice"] = len(twice)
    if pending:
        problems.append(f"{pending} profiles still not fetched after 30 s")
    if twice:
        problems.append(f"profiles fetched more than once: {twice}")
    if sum(fetches.values()) != len(customers):
        problems.append(f"{sum(fetches.values())} profile fetches for {len(customers)} customers")
    drills.processes.stop_all()
    return DrillResult("replicas", not problems, counts, problems)


Target = tuple[str, tuple[bytes, str]]


def _locked(items: Iterator[Target], lock: threading.Lock) -> Iterator[Target]:
    """Share one iterator between threads."""
    while True:
        with lock:
            item = next(items, None)
        if item is None:
            return
        yield item


DRILLS: dict[str, Callable[[Drills], DrillResult]] = {
    "kill-9": kill_9,
    "postgres-restart": postgres_restart,
    "graph-hang": graph_hang,
    # As many hung sends as the send benchmark's connections (= INSTAGRAM_MAX_CONCURRENCY).
    "graph-hang-64": lambda drills: graph_hang(drills, senders=64),
    # More hung sends than Graph slots: the rest are answered 503 instagram_busy.
    "graph-hang-96": lambda drills: graph_hang(drills, senders=96),
    "replicas": replicas,
    "events-kill-9": events_kill_9,
    "events-replicas": events_replicas,
}


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.faults", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "--only",
        action="append",
        choices=list(DRILLS),
        metavar="NAME",
        help=f"run only this drill (repeatable): {', '.join(DRILLS)}",
    )
    parser.add_argument(
        "--database-url",
        default=os.environ.get("BENCH_DATABASE_URL", database.DEFAULT_DATABASE_URL),
        help="PostgreSQL to use (env BENCH_DATABASE_URL); its service tables are emptied",
    )
    return parser.parse_args(argv)


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    names = args.only or list(DRILLS)
    try:
        database.ensure_database(args.database_url)
        database.migrate(args.database_url)
    except BenchError as error:
        _say(f"faults: {error}")
        return 2
    engine = create_engine(args.database_url, pool_pre_ping=True)
    results: list[DrillResult] = []
    try:
        with (
            tempfile.TemporaryDirectory(prefix="insta-faults-") as workdir,
            interrupted_by_sigterm(),
            Processes(environment=base_environment(), workdir=Path(workdir)) as processes,
        ):
            drills = Drills(
                engine=engine, database_url=args.database_url, processes=processes, say=_say
            )
            for name in names:
                _say(f"▶ {name}")
                try:
                    result = DRILLS[name](drills)
                except BenchError as error:
                    result = DrillResult(name, False, {}, [str(error)])
                finally:
                    processes.stop_all()
                results.append(result)
                _say(f"  {'PASS' if result.passed else 'FAIL'}")
    except KeyboardInterrupt:
        _say("faults: interrupted; every process it started has been stopped")
        return 130
    finally:
        engine.dispose()
    print(render(results))
    return 0 if all(result.passed for result in results) else 1


def render(results: Sequence[DrillResult]) -> str:
    """The summary: one block per drill, its verdict, counts and problems."""
    lines = []
    for result in results:
        lines.append(f"{'PASS' if result.passed else 'FAIL'}  {result.name}")
        for key, value in result.counts.items():
            lines.append(f"      {key}: {value}")
        for problem in result.problems:
            lines.append(f"      PROBLEM: {problem}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
