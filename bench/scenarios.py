"""The scenarios: what each one loads into the database, which server it drives and how, and
what it checks afterwards (stored counts, Graph calls)."""

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
from sqlalchemy import Engine

from app.config import Settings
from bench import database
from bench.bare_app import COUNT_FLOOR, CREATE_FLOOR_TABLE, EMPTY_FLOOR
from bench.load import LoadResult, run_wrk
from bench.pools import (
    Pool,
    customer_id,
    write_request_pool,
    write_webhook_pool,
)
from bench.processes import BenchError, Processes, Usage, UsageMeter, tcp_connections
from bench.profiling import finish, start_profiler
from bench.receiver import CountingReceiver
from bench.stack import (
    ACCOUNT_ID,
    API_HEADERS,
    Sandbox,
    base_url,
    start_bare_app,
    start_sandbox,
    start_service,
)

# Pools are sized for this many requests per second, past what the stack can do on one core
# (its bare ceiling), so no delivery is sent twice; a run that still exhausts one says so.
POOL_RATE_1_EVENT = 8000
POOL_RATE_10_EVENTS = 2000
HISTORY_CUSTOMER = customer_id(900_000)
SEND_CUSTOMERS = 100
# Files on the sandbox's CDN the image ingest scenarios' messages point at, in turn.
MEDIA_FILES = 500
GRAPH_POOL_SIZE: int = Settings.model_fields["instagram_pool_size"].default


@dataclass(frozen=True)
class Options:
    """How long and how hard each scenario runs."""

    seconds: float = 10.0
    warmup_seconds: float = 2.0
    connections: int = 16
    send_connections: int = 64
    threads: int = 2
    uvicorn_args: tuple[str, ...] = ()
    profile_dir: Path | None = None  # py-spy samples of each measured run go there


@dataclass
class Row:
    """One line of the table."""

    scenario: str
    description: str
    load: LoadResult
    usage: Usage
    notes: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    events_per_request: int = 1
    connections: int = 16
    ratio: float | None = None

    @property
    def events_per_second(self) -> float:
        return self.load.rate * self.events_per_request


@dataclass
class Context:
    """What the scenarios share: the database, a work directory, the options, progress output."""

    options: Options
    engine: Engine
    database_url: str
    workdir: Path
    processes: Processes
    say: Callable[[str], object]
    loaded: tuple[Any, ...] | None = None  # the dataset the database holds now

    def prepare(self, dataset: tuple[Any, ...], load: Callable[[], None]) -> None:
        """Empty the database and run `load`, unless it holds `dataset` already."""
        if self.loaded == dataset:
            return
        database.truncate(self.engine)
        self.loaded = None
        load()
        self.loaded = dataset

    def written(self) -> None:
        """The scenario wrote to the database: the next one starts from scratch."""
        self.loaded = None


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    run: Callable[[Context], Row]


# --- the measuring step every scenario shares ---------------------------------------------------


def measure(
    context: Context,
    *,
    name: str,
    description: str,
    url: str,
    server_pid: int,
    pool: Pool,
    mode: str,
    warmup_pool: Pool | None = None,
    connections: int | None = None,
    headers: dict[str, str] | None = None,
) -> Row:
    """Warm up, then run wrk for the measured interval while metering the server."""
    options = context.options
    connections = connections or options.connections

    def drive(driven: Pool, seconds: float) -> LoadResult:
        return run_wrk(
            url,
            pool=driven,
            mode=mode,
            seconds=seconds,
            connections=connections,
            threads=options.threads,
            headers=headers,
        )

    if options.warmup_seconds > 0:
        drive(warmup_pool or pool, options.warmup_seconds)
    profiler = None
    statements = False
    if options.profile_dir is not None:
        raw = options.profile_dir / f"{name}.raw"
        profiler = start_profiler(
            context.processes, pid=server_pid, seconds=options.seconds, output=raw
        )
        statements = database.statements_available(context.engine)
        if statements:
            database.reset_statements(context.engine)
    with UsageMeter(server_pid) as meter:
        load = drive(pool, options.seconds)
    assert meter.usage is not None
    if profiler is not None:
        summary = finish(profiler, raw=raw)
        context.processes.stop(profiler)
        context.say(f"  profile: {summary or 'py-spy wrote nothing'}")
    if statements and options.profile_dir is not None:
        report = options.profile_dir / f"{name}.statements.txt"
        report.write_text(database.statements_report(context.engine, requests=load.requests))
        context.say(f"  statements: {report}")
    row = Row(
        scenario=name,
        description=description,
        load=load,
        usage=meter.usage,
        events_per_request=pool.events_per_line,
        connections=connections,
    )
    if load.failures:
        statuses = ", ".join(f"{count} {kind}" for kind, count in load.statuses.items() if count)
        row.problems.append(
            f"{load.failures} failed requests ({statuses}; socket errors {load.socket_errors})"
        )
    return row


def _service(
    context: Context, *, graph_url: str, overrides: dict[str, str] | None = None
) -> tuple[int, str]:
    process = start_service(
        context.processes,
        database_url=context.database_url,
        graph_url=graph_url,
        overrides=overrides,
        extra_args=context.options.uvicorn_args,
    )
    return process.pid, base_url(process)


def settled_count(context: Context, sql: str, **parameters: object) -> int:
    """A count, once requests still running in the server (wrk stops without waiting for
    them) have finished: the same value twice, half a second apart (at most 30 s)."""
    deadline = time.monotonic() + 30
    previous = database.count(context.engine, sql, **parameters)
    while True:
        time.sleep(0.5)
        current = database.count(context.engine, sql, **parameters)
        if current == previous or time.monotonic() > deadline:
            return current
        previous = current


def _expect_graph_calls(row: Row, sandbox: Sandbox, *, expected: int = 0) -> None:
    """A problem unless the service made exactly `expected` Graph calls (reads make none)."""
    calls = sandbox.calls()
    kinds: dict[str, int] = {}
    for call in calls:
        kinds[str(call["kind"])] = kinds.get(str(call["kind"]), 0) + 1
    described = ", ".join(f"{count} {kind}" for kind, count in sorted(kinds.items())) or "none"
    if len(calls) != expected:
        row.problems.append(f"Graph calls: {described} (expected {expected})")


# --- the scenarios -------------------------------------------------------------------------------


def _bare_app(
    context: Context,
    *,
    name: str,
    description: str,
    pool: Pool,
    mode: str,
    environment: dict[str, str] | None = None,
) -> Row:
    """The bare app (with `environment`) measured under `pool`."""
    process = start_bare_app(
        context.processes, extra_args=context.options.uvicorn_args, environment=environment
    )
    try:
        return measure(
            context,
            name=name,
            description=description,
            url=base_url(process),
            server_pid=process.pid,
            pool=pool,
            mode=mode,
        )
    finally:
        context.processes.stop(process)


def bare(context: Context) -> Row:
    return _bare_app(
        context,
        name="bare",
        description="bare FastAPI `def` endpoint returning {} (the ceiling)",
        pool=write_request_pool(context.workdir / "bare.pool", [("GET", "/", None)]),
        mode="request",
    )


def _floor_insert(context: Context, *, layer: str) -> Row:
    """The bare app storing each webhook body by one INSERT, committed before its 200: the
    least any durable intake costs on this stack (the same signed deliveries as ingest-1, and
    nothing checked or parsed)."""
    name = "floor-insert" + ("-sqlalchemy" if layer == "sqlalchemy" else "")
    with context.engine.begin() as connection:
        connection.exec_driver_sql(CREATE_FLOOR_TABLE)
        connection.exec_driver_sql(EMPTY_FLOOR)
    pool = write_webhook_pool(
        context.workdir / f"{name}.pool",
        prefix=f"{name}-run",
        deliveries=int(POOL_RATE_1_EVENT * context.options.seconds * 1.25) + 100,
        events_per_delivery=1,
    )
    row = _bare_app(
        context,
        name=name,
        description="bare app: POST /webhook stored by one INSERT, committed before the 200"
        + (" (through a SQLAlchemy Session)" if layer == "sqlalchemy" else " (psycopg2)"),
        pool=pool,
        mode="webhook",
        environment={"BARE_DATABASE_URL": context.database_url, "BARE_DATABASE_LAYER": layer},
    )
    stored = database.count(context.engine, COUNT_FLOOR)
    row.notes.append(f"{stored:,} bodies stored (warm-up included)")
    return row


def floor_insert(context: Context) -> Row:
    return _floor_insert(context, layer="psycopg2")


def floor_insert_sqlalchemy(context: Context) -> Row:
    return _floor_insert(context, layer="sqlalchemy")


def health(context: Context) -> Row:
    """The service's `/health`: the same uvicorn, middlewares and thread pool as every
    endpoint, and no work of its own (the floor of what the service's own code adds). On an
    empty database, so no background worker has anything to do meanwhile."""
    context.prepare(("health",), lambda: None)
    return _read(
        context,
        name="health",
        description="GET /health of the service (the service's floor)",
        target="/health",
    )


def _ingest(
    context: Context,
    *,
    events: int,
    media: str | None = None,
    endpoints: int = 0,
    delivery_nice: int | None = None,
    accounts: int = 1,
) -> Row:
    """Webhook intake; with `media`, every message is an image on the sandbox's CDN and the
    service runs with MEDIA_ARCHIVE=`media` (`local`: its download worker fetching them);
    with `endpoints`, that many webhook endpoints (local receivers) get every event (the
    delivery threads at EVENTS_DELIVERY_NICE=`delivery_nice`, else the default); with
    `accounts`, that many business accounts are served and the deliveries go to each in
    turn."""
    options = context.options
    rate = POOL_RATE_1_EVENT if events == 1 else POOL_RATE_10_EVENTS
    name = f"ingest-{events}" + (f"-image-{media}" if media else "")
    name += f"-{endpoints}-endpoints" if endpoints else ""
    name += f"-nice-{delivery_nice}" if delivery_nice is not None else ""
    name += f"-{accounts}-accounts" if accounts > 1 else ""
    account_ids = [ACCOUNT_ID, *(f"1784140090000{n:04d}" for n in range(1, accounts))]
    context.prepare(
        ("accounts", accounts), lambda: database.add_accounts(context.engine, account_ids)
    )
    context.written()
    sandbox = start_sandbox(context.processes, webhook_url="http://127.0.0.1:9/webhook")
    image_urls = None
    overrides = {"PROFILE_WORKER_ENABLED": "false"}
    if media:
        image_urls = sandbox.control("POST", "/media", json={"count": MEDIA_FILES}).json()["urls"]
        overrides |= {
            "MEDIA_ARCHIVE": media,
            "MEDIA_DIR": str(context.workdir / "media"),
            "MEDIA_ALLOWED_HOSTS": "127.0.0.1",
        }
    context.say(f"  writing pools of signed deliveries ({events} event(s) each)…")
    pool = write_webhook_pool(
        context.workdir / f"{name}.pool",
        prefix=f"{name}-run",
        deliveries=int(rate * options.seconds * 1.25) + 100,
        events_per_delivery=events,
        image_urls=image_urls,
        account_ids=account_ids,
    )
    warmup = write_webhook_pool(
        context.workdir / f"{name}-warmup.pool",
        prefix=f"{name}-warmup",
        deliveries=int(rate * options.warmup_seconds * 1.25) + 100,
        events_per_delivery=events,
        image_urls=image_urls,
        account_ids=account_ids,
    )
    if endpoints:
        overrides |= {"EVENTS_ALLOW_PRIVATE_URLS": "true"}
    if delivery_nice is not None:
        overrides |= {"EVENTS_DELIVERY_NICE": str(delivery_nice)}
    # Only the measured path runs: new customers' profiles are not fetched meanwhile.
    pid, url = _service(context, graph_url=sandbox.url, overrides=overrides)
    receivers = [subscribed_receiver(url) for _ in range(endpoints)]
    # An endpoint gets the events written after it was created (the account's adoption at
    # start came before).
    before_endpoints = database.count(context.engine, "SELECT coalesce(max(seq), 0) FROM events")
    started = time.monotonic()
    try:
        row = measure(
            context,
            name=name,
            description=f"POST /webhook, {events} new message(s) per signed delivery"
            + (f", each an image (MEDIA_ARCHIVE={media})" if media else "")
            + (f", {endpoints} webhook endpoints subscribed" if endpoints else "")
            + (f", {accounts} accounts served, each delivery for the next" if accounts > 1 else ""),
            url=url,
            server_pid=pid,
            pool=pool,
            warmup_pool=warmup,
            mode="webhook",
        )
        under_load = (sum(r.received() for r in receivers), time.monotonic() - started)
        stored = settled_count(
            context, "SELECT count(*) FROM messages WHERE mid LIKE :prefix", prefix=f"{name}-run-%"
        )
        if media == "local":
            archived = database.count(
                context.engine, "SELECT count(*) FROM media WHERE state = 'stored'"
            )
            row.notes.append(f"{archived:,} images archived meanwhile by the download worker")
        if receivers:
            row.notes.append(
                delivery_note(
                    context,
                    receivers,
                    started=started,
                    after_seq=before_endpoints,
                    under_load=under_load,
                )
            )
    finally:
        context.processes.stop_all()
        for receiver in receivers:
            receiver.close()
    load = row.load
    acknowledged = load.statuses.get("2xx", 0) * events
    sent = load.sent * events
    if events > 1:
        row.notes.append(f"{row.events_per_second:,.0f} events/s")
    row.notes.append(
        f"{stored:,} events stored, {acknowledged:,} acknowledged"
        + (f" (+{stored - acknowledged:,} in flight at the end)" if stored > acknowledged else "")
        + f"; {load.pool_used:,} of {load.pool_lines:,} pooled deliveries used"
    )
    if load.pool_exhausted:
        row.problems.append("the pool ran out: some deliveries were sent twice")
    if not acknowledged <= stored <= sent:
        row.problems.append(
            f"{stored} events stored; expected from {acknowledged} (acknowledged) to {sent} (sent)"
        )
    return row


def ingest_1(context: Context) -> Row:
    return _ingest(context, events=1)


def ingest_1_2_endpoints(context: Context) -> Row:
    return _ingest(context, events=1, endpoints=2)


def ingest_1_2_endpoints_nice_0(context: Context) -> Row:
    return _ingest(context, events=1, endpoints=2, delivery_nice=0)


def subscribed_receiver(url: str) -> CountingReceiver:
    """A local receiver subscribed to every event of the service at `url`."""
    receiver = CountingReceiver()
    response = requests.post(
        f"{url}/api/v1/webhook-endpoints",
        json={"url": receiver.url},
        headers=API_HEADERS,
        timeout=10,
    )
    response.raise_for_status()
    return receiver


def delivery_note(
    context: Context,
    receivers: list[CountingReceiver],
    *,
    started: float,
    after_seq: int,
    under_load: tuple[int, float],
) -> str:
    """How fast the events reached the endpoints: while the load ran (`under_load`: how many
    had arrived when it stopped, and after how many seconds), and all of them: every event
    written (warm-up included), to every receiver, over the time from the warm-up's start
    until the last one arrived (at most 120 s after the load stopped). Events before the
    endpoints (seq <= `after_seq`) are not theirs."""
    written = database.count(
        context.engine, "SELECT count(*) FROM events WHERE seq > :after", after=after_seq
    )
    wanted = written * len(receivers)
    deadline = time.monotonic() + 120
    while sum(r.received() for r in receivers) < wanted and time.monotonic() < deadline:
        time.sleep(0.2)
    delivered = sum(r.received() for r in receivers)
    seconds = time.monotonic() - started
    during, loaded = under_load
    return (
        f"delivery: {during:,} event deliveries while the load ran ({loaded:.1f} s, warm-up "
        f"included) = {during / loaded:,.0f}/s; all {delivered:,} of {wanted:,} ({written:,} "
        f"events x {len(receivers)} endpoints) in {seconds:.1f} s = "
        f"{delivered / seconds:,.0f} deliveries/s"
    )


def ingest_10(context: Context) -> Row:
    return _ingest(context, events=10)


def ingest_1_ten_accounts(context: Context) -> Row:
    return _ingest(context, events=1, accounts=10)


def ingest_1_image_off(context: Context) -> Row:
    return _ingest(context, events=1, media="off")


def ingest_1_image_local(context: Context) -> Row:
    return _ingest(context, events=1, media="local")


def _load_history(context: Context, messages: int) -> None:
    database.add_profiles(
        context.engine, [(HISTORY_CUSTOMER, "bench_customer"), (ACCOUNT_ID, "bench_business")]
    )
    preload = database.add_conversation(
        context.engine, customer_id=HISTORY_CUSTOMER, messages=messages
    )
    context.say(f"  preloaded {preload.messages:,} messages with SQL in {preload.seconds:.1f} s")


def _history(context: Context, *, messages: int, api: str) -> Row:
    context.prepare(("history", messages), lambda: _load_history(context, messages))
    if api == "v1":
        target = f"/api/v1/conversations/{HISTORY_CUSTOMER}/messages"
        name, description = "v1-messages", f"GET {target} (50 newest)"
    else:
        target = f"/messages?user_id={HISTORY_CUSTOMER}"
        name, description = "messages", "GET /messages?user_id=… (50 latest)"
    return _read(
        context,
        name=f"{name}-{_size(messages)}",
        description=f"{description}, {messages:,} stored",
        target=target,
    )


def _read(context: Context, *, name: str, description: str, target: str) -> Row:
    """GET `target` from the service, over and over; the Graph API must not be called."""
    sandbox = start_sandbox(context.processes, webhook_url="http://127.0.0.1:9/webhook")
    pid, url = _service(context, graph_url=sandbox.url)
    pool = write_request_pool(context.workdir / f"{name}.pool", [("GET", target, None)])
    try:
        row = measure(
            context,
            name=name,
            description=description,
            url=url,
            server_pid=pid,
            pool=pool,
            mode="request",
            headers=API_HEADERS,
        )
        _expect_graph_calls(row, sandbox)
        return row
    finally:
        context.processes.stop_all()


def _size(messages: int) -> str:
    if messages >= 1_000_000:
        return f"{messages // 1_000_000}m"
    if messages >= 1000:
        return f"{messages // 1000}k"
    return str(messages)


def _history_scenarios() -> Iterable[Scenario]:
    # Both endpoints of one size in a row: each dataset is loaded once.
    for messages in (100, 10_000, 1_000_000):
        for api in ("messages", "v1"):

            def run(context: Context, messages: int = messages, api: str = api) -> Row:
                return _history(context, messages=messages, api=api)

            prefix = "v1-messages" if api == "v1" else "messages"
            endpoint = "GET /api/v1/conversations/{id}/messages" if api == "v1" else "GET /messages"
            yield Scenario(
                f"{prefix}-{_size(messages)}", f"{endpoint} with {messages:,} stored", run
            )


def _load_send_customers(context: Context) -> None:
    customers = [customer_id(800_000 + number) for number in range(SEND_CUSTOMERS)]
    database.add_profiles(
        context.engine,
        [(ACCOUNT_ID, "bench_business")]
        + [(customer, f"send_customer_{n}") for n, customer in enumerate(customers)],
    )
    for customer in customers:
        # One inbound message just now: the 24-hour window is open.
        database.add_conversation(context.engine, customer_id=customer, messages=1, vacuum=False)


def _send(context: Context, *, latency_ms: int) -> Row:
    customers = [customer_id(800_000 + number) for number in range(SEND_CUSTOMERS)]
    context.prepare(("send",), lambda: _load_send_customers(context))
    context.written()
    sandbox = start_sandbox(
        context.processes, webhook_url="http://127.0.0.1:9/webhook", latency_ms=latency_ms
    )
    for number, customer in enumerate(customers):
        sandbox.add_customer(customer, username=f"send_customer_{number}")
    pid, url = _service(context, graph_url=sandbox.url)
    pool = write_request_pool(
        context.workdir / "send.pool",
        [
            ("POST", f"/api/v1/conversations/{customer}/messages", {"text": "bench reply"})
            for customer in customers
        ],
    )
    sandbox_port = int(sandbox.url.rsplit(":", 1)[1])
    # Setting up the sandbox closed connections too: count only what the run adds.
    closed_before = tcp_connections(sandbox_port)["time_wait"]
    try:
        row = measure(
            context,
            name=f"send-{latency_ms}ms",
            description=f"POST /api/v1/conversations/{{id}}/messages, Graph API in {latency_ms} ms",
            url=url,
            server_pid=pid,
            pool=pool,
            mode="request",
            connections=context.options.send_connections,
            headers=API_HEADERS,
        )
        settled_count(context, "SELECT count(*) FROM messages WHERE status = 'sent'")
        connections = tcp_connections(sandbox_port)
        sends = len(sandbox.calls("send"))
        other_calls = len(sandbox.calls()) - sends
    finally:
        context.processes.stop_all()
    by_status = {
        status: database.count(
            context.engine,
            "SELECT count(*) FROM messages WHERE source = 'api' AND status = :status",
            status=status,
        )
        for status in ("sent", "pending", "failed")
    }
    row.notes.append(
        f"{sends:,} Graph sends; stored: {by_status['sent']:,} sent, "
        f"{by_status['pending']:,} pending, {by_status['failed']:,} failed (warm-up included)"
    )
    if sends != by_status["sent"]:
        row.problems.append(
            f"{sends} messages went to the Graph API but {by_status['sent']} are stored as sent"
        )
    if other_calls:
        row.problems.append(f"{other_calls} Graph calls other than sends")
    # Each connection shows twice in /proc/net/tcp (both ends are on this machine) while open,
    # once after it closed (the closing end's TIME_WAIT).
    closed = len(connections["time_wait"] - closed_before)
    row.notes.append(
        f"Graph API connections: {len(connections['established']) // 2} open,"
        f" {closed} closed during warm-up and run"
    )
    if closed > GRAPH_POOL_SIZE:
        row.problems.append(f"{closed} Graph API connections were closed: the pool reopens them")
    return row


def send_0ms(context: Context) -> Row:
    return _send(context, latency_ms=0)


def send_20ms(context: Context) -> Row:
    return _send(context, latency_ms=20)


def user(context: Context) -> Row:
    context.prepare(
        ("user",),
        lambda: database.add_profiles(
            context.engine, [(HISTORY_CUSTOMER, "bench_customer"), (ACCOUNT_ID, "bench_business")]
        ),
    )
    return _read(
        context,
        name="user",
        description="GET /user?user_id=… (cached profile)",
        target=f"/user?user_id={HISTORY_CUSTOMER}",
    )


def _backfill(context: Context) -> Row:
    from bench.history import backfill  # bench/history.py imports this module

    return backfill(context)


SCENARIOS: dict[str, Scenario] = {
    scenario.name: scenario
    for scenario in (
        Scenario("bare", "bare FastAPI app GET / (the ceiling)", bare),
        Scenario("health", "the service's GET /health (its floor)", health),
        Scenario(
            "floor-insert",
            "bare app storing each webhook body by one INSERT (psycopg2): durable intake's floor",
            floor_insert,
        ),
        Scenario(
            "floor-insert-sqlalchemy",
            "the same through a SQLAlchemy Session (BEGIN, INSERT, COMMIT)",
            floor_insert_sqlalchemy,
        ),
        Scenario("ingest-1", "webhook ingest, 1 event per delivery", ingest_1),
        Scenario(
            "ingest-1-2-endpoints",
            "webhook ingest, 1 event per delivery, 2 webhook endpoints getting every event",
            ingest_1_2_endpoints,
        ),
        Scenario(
            "ingest-1-2-endpoints-nice-0",
            "the same, the delivery threads at EVENTS_DELIVERY_NICE=0 (sharing the core equally)",
            ingest_1_2_endpoints_nice_0,
        ),
        Scenario("ingest-10", "webhook ingest, 10 events per delivery", ingest_10),
        Scenario(
            "ingest-1-10-accounts",
            "webhook ingest, 1 event per delivery, ten accounts configured (each in turn)",
            ingest_1_ten_accounts,
        ),
        Scenario(
            "ingest-1-image-off",
            "webhook ingest, 1 image per delivery, URLs only (MEDIA_ARCHIVE=off)",
            ingest_1_image_off,
        ),
        Scenario(
            "ingest-1-image-local",
            "webhook ingest, 1 image per delivery, the media worker archiving (local)",
            ingest_1_image_local,
        ),
        *_history_scenarios(),
        Scenario("send-0ms", "send, Graph API answering in 0 ms (64 connections)", send_0ms),
        Scenario("send-20ms", "send, Graph API answering in 20 ms (64 connections)", send_20ms),
        Scenario("user", "GET /user with a cached profile", user),
        Scenario("backfill", "history backfill from the Conversations API", _backfill),
    )
}


def ordered(names: Iterable[str]) -> list[Scenario]:
    """The scenarios named, in the table's order (datasets loaded once for consecutive ones)."""
    wanted = set(names)
    unknown = wanted - SCENARIOS.keys()
    if unknown:
        raise BenchError(
            f"unknown scenario(s) {', '.join(sorted(unknown))}; known: {', '.join(SCENARIOS)}"
        )
    return [scenario for name, scenario in SCENARIOS.items() if name in wanted]
