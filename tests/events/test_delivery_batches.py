"""How delivery keeps its cost down: the outcomes of attempts that finish together are recorded
in one transaction, an endpoint's health is written only when it changes, a claim walks the
due index instead of sorting the backlog, and the delivery threads yield the CPU to requests.
Attempts go over real HTTP to a local receiver, on both databases."""

import os
import socket
import sys
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import urllib3
from sqlalchemy import Engine, create_engine, event, insert, select, text
from sqlalchemy.orm import Session, sessionmaker

from app.config import Settings
from app.models import Event, EventDelivery, EventDeliveryAttempt, WebhookEndpoint, utcnow
from app.repositories import event_deliveries
from app.sandbox import webhooks
from app.services.events.delivery import (
    CONNECTION_FAILED,
    Attempt,
    Deliverer,
    DeliveryWorker,
    Outcome,
    lower_thread_priority,
)
from app.services.events.horizon import Horizon
from app.services.events.transport import DeliveryTransport
from tests.events.receiver import Answer, Receiver
from tests.helpers import ACCOUNT_ID, ServiceClient, wait_until
from tests.stack import SharedService

MS = 1745923800000
CUSTOMERS = ["1187429836452101", "1187429836452102", "1187429836452103"]
LINUX_ONLY = pytest.mark.skipif(sys.platform != "linux", reason="per-thread nice is Linux's")


@pytest.fixture
def api(quiet_service: SharedService) -> Iterator[ServiceClient]:
    # Background delivery paused: the test's own Deliverer makes the attempts.
    with ServiceClient(quiet_service.url) as client:
        yield client


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    made = create_engine(database_url)
    yield made
    made.dispose()


@pytest.fixture
def deliverer(engine: Engine, quiet_service: SharedService) -> Iterator[Deliverer]:
    made = Deliverer(
        session_factory=sessionmaker(bind=engine, expire_on_commit=False),
        settings=quiet_service.settings,
        horizon=Horizon(),
    )
    yield made
    made.http.close()


def say(api: ServiceClient, mid: str, customer: str) -> None:
    item = webhooks.message_item(
        account_id=ACCOUNT_ID, customer_id=customer, mid=mid, timestamp_ms=MS, text=mid
    )
    assert api.deliver(webhooks.delivery(account_id=ACCOUNT_ID, items=[item])).status_code == 200


def subscribe(api: ServiceClient, url: str) -> str:
    body = {"url": url, "event_types": ["message.received"]}
    response = api.post("/api/v1/webhook-endpoints", json=body)
    assert response.status_code == 201, response.text
    endpoint_id: str = response.json()["id"]
    return endpoint_id


def claimed(deliverer: Deliverer, count: int) -> list[Attempt]:
    """`count` attempts, fanned out and claimed (again, until they are: on PostgreSQL the
    safe horizon trails an event writer in flight for a moment)."""
    got: list[Attempt] = []

    def more() -> bool:
        deliverer.dispatch()
        got.extend(deliverer.claim(count - len(got)))
        return len(got) >= count

    wait_until(more, what=f"{count} attempt(s) claimed")
    return got


def one_round(deliverer: Deliverer) -> None:
    """Rounds until one made an attempt."""
    wait_until(lambda: deliverer.run_once() == 1, what="an attempt")


def statements_during(engine: Engine) -> list[str]:
    """The SQL the engine sends from now on (for the test's duration)."""
    sent: list[str] = []

    def remember(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        sent.append(statement)

    event.listen(engine, "before_cursor_execute", remember)
    return sent


def commits_during(engine: Engine) -> list[int]:
    made: list[int] = []
    event.listen(engine, "commit", lambda conn: made.append(1))
    return made


def test_attempts_finished_together_are_recorded_in_one_transaction(
    api: ServiceClient, receiver: Receiver, deliverer: Deliverer, engine: Engine, db: Session
) -> None:
    endpoint_id = subscribe(api, receiver.url)
    for number, customer in enumerate(CUSTOMERS, start=1):
        say(api, f"m-{number}", customer)
    receiver.answer_for(lambda body: body["data"]["message"]["mid"] == "m-3", Answer(500))
    attempts = claimed(deliverer, 3)  # three conversations: none waits for another
    assert deliverer.claim(10) == []
    finished = [(attempt, deliverer.post(attempt)) for attempt in attempts]
    statements, commits = statements_during(engine), commits_during(engine)

    deliverer.record(finished)

    assert len(commits) == 1
    # The successes share one UPDATE; the retry has its own time (and holds back its
    # conversation's later deliveries: one more); one INSERT of the attempts' rows.
    updates = [s for s in statements if s.startswith("UPDATE event_deliveries")]
    inserts = [s for s in statements if s.startswith("INSERT INTO event_delivery_attempts")]
    assert (len(updates), len(inserts)) == (3, 1)
    stored = db.execute(
        select(EventDelivery.status, EventDelivery.attempts, EventDeliveryAttempt)
        .join(EventDeliveryAttempt, EventDeliveryAttempt.delivery_id == EventDelivery.id)
        .order_by(EventDelivery.event_seq)
    ).all()
    assert [(status, count, a.number, a.status_code, a.error) for status, count, a in stored] == [
        ("succeeded", 1, 1, 200, None),
        ("succeeded", 1, 1, 200, None),
        ("pending", 1, 1, 500, "HTTP 500"),
    ]
    assert len({a.attempted_at for _, _, a in stored}) == 1
    deliveries = db.scalars(select(EventDelivery).order_by(EventDelivery.event_seq)).all()
    assert all(d.claimed_until is None for d in deliveries)
    assert [d.delivered_at is not None for d in deliveries] == [True, True, False]
    assert deliveries[2].next_attempt_at > stored[2][2].attempted_at
    # m-3 finished last, with a failure: the endpoint is failing since then.
    assert db.get(WebhookEndpoint, endpoint_id).failing_since is not None  # type: ignore[union-attr]
    assert len(receiver.all()) == 3


def test_the_endpoints_health_is_written_only_when_it_changes(
    api: ServiceClient, receiver: Receiver, deliverer: Deliverer, engine: Engine, db: Session
) -> None:
    endpoint_id = subscribe(api, receiver.url)
    say(api, "m-1", CUSTOMERS[0])
    receiver.answer_next(Answer(503))
    one_round(deliverer)
    db.expire_all()
    assert db.get(WebhookEndpoint, endpoint_id).failing_since is not None  # type: ignore[union-attr]

    time.sleep(0.2)  # the test schedule's first retry: 0.1 s
    [retry] = claimed(deliverer, 1)
    assert retry.endpoint_failing
    deliverer.send(retry)  # 200: the failing streak ends
    db.expire_all()
    assert db.get(WebhookEndpoint, endpoint_id).failing_since is None  # type: ignore[union-attr]

    say(api, "m-2", CUSTOMERS[0])
    statements = statements_during(engine)
    one_round(deliverer)
    # A success of an endpoint that was not failing writes nothing to it.
    assert not [s for s in statements if s.startswith("UPDATE webhook_endpoints SET failing")]
    assert [r.status for r in receiver.all()] == [503, 200, 200]


def test_a_refused_connection_is_a_failed_attempt_retried_later(
    api: ServiceClient, deliverer: Deliverer, db: Session
) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]  # nothing listens there once it is closed
    subscribe(api, f"http://127.0.0.1:{port}/hook")
    say(api, "m-1", CUSTOMERS[0])

    one_round(deliverer)

    delivery = db.scalars(select(EventDelivery)).one()
    attempt = db.scalars(select(EventDeliveryAttempt)).one()
    assert (attempt.status_code, attempt.error) == (None, CONNECTION_FAILED)
    assert (delivery.status, delivery.attempts) == ("pending", 1)
    assert delivery.next_attempt_at > attempt.attempted_at


def test_a_claim_reads_the_due_index_in_order_however_stale_the_statistics(
    backend: str, engine: Engine
) -> None:
    if backend != "postgresql":
        pytest.skip("SQLite plans with no statistics to go stale")
    # Right after a TRUNCATE PostgreSQL knows nothing of the table's size: seen in the bench,
    # where a claim with 5,000 pending sorted them all (25-50 ms) unless told not to.
    now = utcnow()
    with engine.begin() as connection:
        connection.execute(text("TRUNCATE event_deliveries CASCADE"))
        connection.execute(
            insert(WebhookEndpoint),
            [{"id": f"we_{n}", "url": "https://example.com", "secret": "x"} for n in (1, 2)],
        )
        seqs = (
            connection.execute(
                insert(Event).returning(Event.seq),
                [
                    {"id": f"evt_{n}", "type": "message.received", "payload": {}, "created_at": now}
                    for n in range(4000)
                ],
            )
            .scalars()
            .all()
        )
        connection.execute(
            insert(EventDelivery),
            [
                {
                    "endpoint_id": endpoint_id,
                    "event_seq": seq,
                    "conversation": str(seq % 1000),
                    "next_attempt_at": now - timedelta(seconds=1),
                }
                for seq in seqs
                for endpoint_id in ("we_1", "we_2")
            ],
        )
    with Session(engine) as session:
        event_deliveries.walk_due_in_order(session)
        compiled = event_deliveries.DUE.compile(dialect=engine.dialect)
        params = {**compiled.params, "now": now, "limit": 8}
        cursor = session.connection().connection.cursor()
        cursor.execute("EXPLAIN " + str(compiled), params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
        session.rollback()
    assert "ix_event_deliveries_due" in plan
    assert "Sort" not in plan


def made_up_attempts(count: int) -> list[Attempt]:
    """Attempts of no delivery (for a worker over no database)."""
    now = utcnow()
    return [
        Attempt(
            delivery_id=n, endpoint_id="we_1", url="", secrets=[], event={},
            created_at=now, attempts=0,
        )
        for n in range(count)
    ]  # fmt: skip


class Recorder:
    """A deliverer as the worker sees it, over no database: one batch of four attempts,
    each answered 200; the first recording waits until all four are posted."""

    def __init__(self) -> None:
        self.batches: list[int] = []
        self.priorities: list[int] = []
        self.posted = threading.Semaphore(0)
        self.claimed = False
        self.http = self  # closed by the worker on stop

    def dispatch(self) -> bool:
        return True

    def claim(self, limit: int) -> list[Attempt]:
        if self.claimed:
            return []
        self.claimed = True
        return made_up_attempts(4)

    def post(self, attempt: Attempt) -> Outcome:
        self.priorities.append(os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))
        self.posted.release()
        return Outcome(200, None, 1)

    def record(self, finished: list[tuple[Attempt, Outcome]]) -> None:
        if not self.batches:
            for _ in range(4):
                assert self.posted.acquire(timeout=5)
            time.sleep(0.1)  # the other three are waiting to be recorded
        self.batches.append(len(finished))

    def close(self) -> None:
        pass


@LINUX_ONLY
def test_the_worker_records_what_finished_meanwhile_in_one_batch_at_low_priority() -> None:
    recorder = Recorder()
    worker = DeliveryWorker(recorder, slots=4, idle_seconds=0.05, nice=19)  # type: ignore[arg-type]
    worker.start()
    try:
        deadline = time.monotonic() + 5
        while sum(recorder.batches) < 4 and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        worker.stop()
    # The first outcome is recorded alone; the three that finished meanwhile, together.
    assert recorder.batches == [1, 3]
    assert recorder.priorities == [19] * 4


@LINUX_ONLY
def test_lower_thread_priority_changes_only_the_calling_thread() -> None:
    seen: list[int] = []

    def lowered() -> None:
        lower_thread_priority(12)
        seen.append(os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))

    before = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    thread = threading.Thread(target=lowered)
    thread.start()
    thread.join()
    assert seen == [12]
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == before


def test_settings_take_the_delivery_priority() -> None:
    assert Settings(_env_file=None).events_delivery_nice == 19
    assert Settings(_env_file=None, events_delivery_nice=0).events_delivery_nice == 0
    with pytest.raises(ValueError, match="less than or equal to 19"):
        Settings(_env_file=None, events_delivery_nice=20)


def test_a_conversation_waiting_for_a_retry_holds_back_its_later_events(
    api: ServiceClient, receiver: Receiver, deliverer: Deliverer, db: Session
) -> None:
    subscribe(api, receiver.url)
    waiting, other = CUSTOMERS[0], CUSTOMERS[1]
    receiver.answer_next(Answer(503, headers={"Retry-After": "3600"}))
    say(api, "m-1", waiting)
    say(api, "m-2", waiting)  # fanned out with m-1, before m-1 failed
    one_round(deliverer)  # m-1 only: m-2 waits for it

    say(api, "m-3", waiting)  # fanned out after m-1 failed
    say(api, "m-4", other)
    [going] = claimed(deliverer, 1)  # the other conversation flows
    assert deliverer.claim(10) == []

    assert going.event["data"]["message"]["mid"] == "m-4"
    rows = db.execute(
        select(EventDelivery.conversation, EventDelivery.next_attempt_at)
        .where(EventDelivery.conversation == waiting)
        .order_by(EventDelivery.event_seq)
    ).all()
    retry_at = rows[0].next_attempt_at
    assert retry_at > utcnow() + timedelta(seconds=3500)
    # Its later events wait as long as it does: no claim walks past them meanwhile.
    assert [row.next_attempt_at for row in rows] == [retry_at] * 3


def test_the_backlog_counts_pending_deliveries_and_events_not_fanned_out_yet(
    api: ServiceClient, receiver: Receiver, deliverer: Deliverer, db: Session
) -> None:
    endpoint_id = subscribe(api, receiver.url)
    receiver.answer_next(Answer(503, headers={"Retry-After": "3600"}))
    say(api, "m-1", CUSTOMERS[0])
    one_round(deliverer)  # m-1 now waits an hour for its retry
    say(api, "m-2", CUSTOMERS[1])  # written, not fanned out yet

    assert event_deliveries.backlog(db) == {endpoint_id: 2}
    metrics = api.get("/metrics").text
    assert f'insta_event_backlog{{endpoint="{endpoint_id}"}} 2.0' in metrics
    assert deliverer.dispatch()
    db.expire_all()
    assert event_deliveries.backlog(db) == {endpoint_id: 2}  # now both as deliveries


class Backlogged(Recorder):
    """Three full claims of a backlog, then it runs low; counts the fan-outs."""

    def __init__(self) -> None:
        super().__init__()
        self.claims: list[int] = []  # how many each claim returned
        self.dispatched_before: list[int] = []  # fan-outs made before each claim
        self.dispatches = 0

    def dispatch(self) -> bool:
        self.dispatches += 1
        return True

    def claim(self, limit: int) -> list[Attempt]:
        self.dispatched_before.append(self.dispatches)
        count = limit if len(self.claims) < 3 else (1 if len(self.claims) == 3 else 0)
        self.claims.append(count)
        return made_up_attempts(count)

    def record(self, finished: list[tuple[Attempt, Outcome]]) -> None:
        self.batches.append(len(finished))


def test_while_claims_come_back_full_no_new_events_are_fanned_out(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("app.services.events.delivery.DISPATCH_SECONDS", 0)
    backlogged = Backlogged()
    worker = DeliveryWorker(backlogged, slots=4, idle_seconds=0.01)  # type: ignore[arg-type]
    worker.start()
    try:
        deadline = time.monotonic() + 5
        while len(backlogged.claims) < 6 and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        worker.stop()
    claims, before = backlogged.claims[:6], backlogged.dispatched_before[:6]
    assert claims[:4] == [claims[0], claims[1], claims[2], 1]
    assert all(count >= 2 for count in claims[:3])  # full: at least half the slots
    # One fan-out before the first claim; none while the claims came back full; then one
    # before each claim once they ran low (the 4th returned 1, the 5th nothing).
    assert before[:4] == [1, 1, 1, 1]
    assert before[4] == 2
    assert before[5] == 3


def test_a_replay_during_an_attempt_is_not_undone_by_its_outcome(
    api: ServiceClient, receiver: Receiver, deliverer: Deliverer, db: Session
) -> None:
    endpoint_id = subscribe(api, receiver.url)
    say(api, "m-1", CUSTOMERS[0])
    [attempt] = claimed(deliverer, 1)
    outcome = deliverer.post(attempt)  # the POST made; its outcome not recorded yet
    seq = db.scalars(select(EventDelivery.event_seq)).one()
    replay = api.post(f"/api/v1/webhook-endpoints/{endpoint_id}/replay", json={"since_seq": seq})
    assert replay.status_code == 202

    deliverer.record([(attempt, outcome)])

    db.expire_all()
    delivery = db.scalars(select(EventDelivery)).one()
    assert (delivery.status, delivery.attempts) == ("pending", 0)  # replayed: it goes again
    attempt_row = db.scalars(select(EventDeliveryAttempt)).one()  # the attempt is listed
    assert (attempt_row.number, attempt_row.status_code) == (1, 200)
    one_round(deliverer)
    db.expire_all()
    assert db.scalars(select(EventDelivery.status)).one() == "succeeded"
    assert len(receiver.succeeded()) == 2


def test_a_proxy_from_the_environment_carries_deliveries_except_to_no_proxy_hosts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    monkeypatch.setenv("NO_PROXY", "hooks.local")
    transport = DeliveryTransport(allow_private=False)
    try:
        proxied = transport._manager("https://hooks.example.com/events")
        direct = transport._manager("https://hooks.local/events")
    finally:
        transport.close()
    assert isinstance(proxied, urllib3.ProxyManager)
    assert proxied.proxy is not None
    assert proxied.proxy.host == "proxy.internal"
    assert not isinstance(direct, urllib3.ProxyManager)
    # Direct connections are checked (public addresses only); the proxy makes its own.
    assert direct.pool_classes_by_scheme["https"].__name__ == "_CheckedHTTPSPool"
