"""The database away: reads, sends and webhooks answer 503 `database_unavailable` with
`Retry-After`, call no one and store nothing; a request that finds no free connection in the
pool is answered the same; a running service recovers by itself once the database is back."""

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

import pytest
from sqlalchemy import make_url, text
from sqlalchemy.orm import Session

from app.models import Message, WebhookDelivery
from app.sandbox.server import BackgroundServer, bind_socket
from tests import stack as shared
from tests.conftest import DATABASE_DOWN, InProcess, StartService
from tests.helpers import (
    ServiceClient,
    count_rows,
    customer_writes,
    encode,
    example,
    new_customer,
    sandbox_sends,
    signed_headers,
    wait_until,
)

POSTGRES_ONLY = pytest.mark.parametrize(
    "backend", [pytest.param("postgresql", marks=pytest.mark.postgres)], indirect=True
)
UNAVAILABLE = {
    "detail": "The database is unavailable; retry later.",
    "code": "database_unavailable",
}


def assert_unavailable(response: Any) -> None:
    assert response.status_code == 503, response.text
    assert response.json() == UNAVAILABLE
    assert response.headers["Retry-After"] == "5"


def every_read_and_send(client: Any, customer: str, mid: str) -> list[Any]:
    """One request of every kind that needs the database, the webhook aside."""
    return [
        client.get("/messages", params={"user_id": customer}),
        client.get("/user", params={"user_id": customer}),
        client.get("/api/v1/conversations"),
        client.get(f"/api/v1/conversations/{customer}"),
        client.get(f"/api/v1/conversations/{customer}/messages"),
        client.get(f"/api/v1/messages/{mid}"),
        client.get(f"/api/v1/users/{customer}"),
        client.post(
            "/message/send", params={"user_id": customer}, json={"message": {"text": "hi"}}
        ),
        client.post(f"/api/v1/conversations/{customer}/messages", json={"text": "hi"}),
        client.post(f"/api/v1/conversations/{customer}/reactions", json={"mid": mid}),
    ]


def test_with_the_database_down_reads_and_sends_are_503_and_meta_is_not_called(
    in_process: InProcess, sandbox: BackgroundServer, meta: ServiceClient
) -> None:
    # Nothing listens where the database should be; the Graph API is the sandbox, where the
    # customer has written (Meta would accept a send).
    settings = shared.service_settings(database_url=DATABASE_DOWN, graph_url=sandbox.url)
    client = in_process(settings, db_connect_timeout=1)
    customer = new_customer(meta, username="anna_k")["id"]
    written = meta.post(
        f"/_sandbox/customers/{customer}/messages", json={"text": "hi", "deliver": False}
    )
    assert written.status_code == 201

    for response in every_read_and_send(client, customer, written.json()["mid"]):
        assert_unavailable(response)

    # A send stores its pending row before it calls Meta: with no database, no call.
    assert sandbox_sends(meta) == []
    assert [call["kind"] for call in meta.get("/_sandbox/calls").json()] == []


class TcpProxy:
    """A TCP proxy in front of PostgreSQL that the test cuts (open connections dropped, new
    ones closed at once) and restores: the database going away under a running service,
    without touching the server the other tests use."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self._listener = bind_socket()
        self.port = self._listener.getsockname()[1]
        self._cut = threading.Event()
        self._lock = threading.Lock()
        self._open: list[socket.socket] = []
        self._accepting = threading.Thread(target=self._accept, daemon=True)
        self._accepting.start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # closed
            if self._cut.is_set():
                client.close()
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                self._open += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for end in (source, sink):
                self._close(end)

    def _close(self, end: socket.socket) -> None:
        with suppress(OSError):
            end.shutdown(socket.SHUT_RDWR)
        end.close()

    def cut(self) -> None:
        self._cut.set()
        with self._lock:
            ends, self._open = self._open, []
        for end in ends:
            self._close(end)

    def restore(self) -> None:
        self._cut.clear()

    def close(self) -> None:
        self.cut()
        with suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the thread blocked in accept()
        self._listener.close()
        self._accepting.join(5)
        assert not self._accepting.is_alive()


@contextmanager
def proxied(database_url: str) -> Iterator[tuple[TcpProxy, str]]:
    """A proxy to the test's PostgreSQL database, and the URL through it."""
    url = make_url(database_url)
    proxy = TcpProxy(url.host or "127.0.0.1", url.port or 5432)
    try:
        through = url.set(host="127.0.0.1", port=proxy.port)
        yield proxy, through.render_as_string(hide_password=False)
    finally:
        proxy.close()


@POSTGRES_ONLY
def test_a_running_service_answers_503_while_its_database_is_away_and_recovers(
    start_service: StartService, database_url: str, meta: ServiceClient, db: Session
) -> None:
    with proxied(database_url) as (proxy, url):
        server = start_service(database_url=url, db_connect_timeout=1, profile_worker_enabled=False)
        customer = new_customer(meta, username="anna_k")["id"]
        mid = customer_writes(meta, customer, "Hi! Do you ship to Berlin?")["mid"]
        with ServiceClient(server.url) as client:
            history = client.get("/messages", params={"user_id": customer})
            assert history.status_code == 200

            proxy.cut()
            outage = every_read_and_send(client, customer, mid)
            written = meta.post(f"/_sandbox/customers/{customer}/messages", json={"text": "?"})
            assert sandbox_sends(meta) == []  # no send reached Meta

            proxy.restore()
            wait_until(
                lambda: client.get("/messages", params={"user_id": customer}).status_code == 200,
                what="the service reading again",
            )
            after = client.get("/messages", params={"user_id": customer})
            sent = client.post(
                "/message/send", params={"user_id": customer}, json={"message": {"text": "Yes!"}}
            )
            # The first message's delivery and the echo of "Yes!", nothing in between.
            wait_until(lambda: count_rows(db, WebhookDelivery) == 2, what="the echo of the reply")

    for response in outage:
        assert_unavailable(response)
    # Meta's delivery during the outage was refused with a 503 (Meta retries it) and left
    # nothing behind.
    assert written.json()["delivery"]["status_code"] == 503
    assert after.json() == history.json()
    assert sent.status_code == 200
    db.expire_all()
    assert [(m.text, m.status) for m in db.query(Message).order_by(Message.sent_at)] == [
        ("Hi! Do you ship to Berlin?", None),
        ("Yes!", "sent"),
    ]


@POSTGRES_ONLY
def test_a_request_that_finds_no_free_connection_is_a_503(
    start_service: StartService, db: Session
) -> None:
    server = start_service(
        db_pool_size=1,
        db_max_overflow=0,
        db_pool_timeout=0.5,
        profile_worker_enabled=False,
        token_refresh_enabled=False,
    )
    raw = encode(example("text"))
    with ServiceClient(server.url) as client:
        with server.app.state.engine.connect() as taken:  # the pool's only connection
            taken.execute(text("SELECT 1"))
            read = client.get("/messages", params={"user_id": "1187429836452190"})
            delivered = client.post("/webhook", data=raw, headers=signed_headers(raw))
        # The connection is back in the pool: the service serves again.
        again = client.get("/messages", params={"user_id": "1187429836452190"})

    assert_unavailable(read)
    assert_unavailable(delivered)
    assert (again.status_code, again.json()["code"]) == (404, "messages_not_found")
    assert count_rows(db, WebhookDelivery) == 0
