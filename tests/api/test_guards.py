"""What answers before any endpoint runs: the API key before the body, the body limits, the
Host check and path-only redirects; and error answers that need no worker thread."""

import inspect
import socket
import threading

import pytest
from sqlalchemy.orm import Session

from app.models import Message
from app.sandbox.server import BackgroundServer
from tests.conftest import StartService
from tests.helpers import (
    API_KEY,
    ServiceClient,
    add_fault,
    customer_writes,
    encode,
    graph_calls,
    new_customer,
    signed_headers,
    text_message,
    wait_until,
)

SEND_PATH = "/api/v1/conversations/1187429836452190/messages"


@pytest.fixture
def guarded(start_service: StartService) -> BackgroundServer:
    return start_service(api_key=API_KEY, allow_open_api=False)


def raw_request(server: BackgroundServer, head: bytes, body: bytes = b"") -> socket.socket:
    """A connection that sent `head` (and the start of a body) and keeps the rest back."""
    connection = socket.create_connection((server.host, server.port), timeout=10)
    connection.sendall(head + body)
    return connection


def read_status(connection: socket.socket) -> int:
    answer = b""
    while b"\r\n" not in answer:
        chunk = connection.recv(4096)
        if not chunk:
            break
        answer += chunk
    return int(answer.split(b" ", 2)[1])


@pytest.mark.parametrize(
    "body",
    [b"not json at all", b'{"text": 5}', b"\xff\xfe" * 100],
    ids=["garbage", "wrong-types", "binary"],
)
def test_a_request_without_the_key_is_401_whatever_its_body(
    guarded: BackgroundServer, body: bytes
) -> None:
    with ServiceClient(guarded.url) as client:
        response = client.post(SEND_PATH, data=body, headers={"Content-Type": "application/json"})

    assert response.status_code == 401
    assert response.json()["code"] == "unauthorized"


def test_a_huge_body_without_the_key_is_refused_before_it_is_read(
    guarded: BackgroundServer,
) -> None:
    """Several 4 MiB requests whose bodies never come: each is answered 401 from its headers,
    and the service keeps answering /health meanwhile."""
    head = (
        f"POST {SEND_PATH} HTTP/1.1\r\nHost: {guarded.host}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {4 * 1024 * 1024}\r\n\r\n"
    ).encode()
    connections = [raw_request(guarded, head, b'{"text": "') for _ in range(8)]
    try:
        statuses = [read_status(connection) for connection in connections]
        with ServiceClient(guarded.url) as client:
            health = client.get("/health", timeout=5)
    finally:
        for connection in connections:
            connection.close()

    assert statuses == [401] * 8
    assert health.status_code == 200


def test_json_api_bodies_are_limited_to_max_api_body_bytes(start_service: StartService) -> None:
    server = start_service(api_key=API_KEY, max_api_body_bytes=4096)
    with ServiceClient(server.url, api_key=API_KEY) as client:
        response = client.post(SEND_PATH, json={"text": "x" * 5000})

    assert response.status_code == 413
    assert response.json()["code"] == "payload_too_large"
    assert "MAX_API_BODY_BYTES" in response.json()["detail"]


def test_the_webhook_keeps_its_own_larger_limit(start_service: StartService, db: Session) -> None:
    server = start_service(api_key=API_KEY, max_api_body_bytes=4096)
    body = encode(text_message(mid="m.big", text="x" * 6000))
    assert len(body) > 4096
    with ServiceClient(server.url) as client:
        response = client.post("/webhook", data=body, headers=signed_headers(body))

    assert response.status_code == 200
    stored = db.query(Message).filter_by(mid="m.big").one()
    assert stored.text == "x" * 6000


def test_error_handlers_are_coroutines(service: BackgroundServer) -> None:
    handlers = service.app.exception_handlers  # type: ignore[attr-defined]
    assert handlers
    for exception, handler in handlers.items():
        assert inspect.iscoroutinefunction(handler), exception


def test_errors_are_answered_while_every_worker_thread_is_busy(
    start_service: StartService, meta: ServiceClient
) -> None:
    """One worker thread, held by a send Meta does not answer: a validation error, an
    unknown path and a missing key are still answered."""
    server = start_service(
        api_key=API_KEY, worker_threads=1, instagram_max_concurrency=1, instagram_read_timeout=5
    )
    customer = new_customer(meta)
    customer_writes(meta, customer["id"])
    add_fault(meta, kind="send", delay_seconds=3)
    holding = threading.Thread(
        target=lambda: ServiceClient(server.url, api_key=API_KEY).post(
            f"/api/v1/conversations/{customer['id']}/messages", json={"text": "hi"}
        )
    )
    holding.start()
    try:
        with ServiceClient(server.url, api_key=API_KEY) as client:
            # Wait until the send has reached the sandbox: the one thread is taken.
            wait_until(lambda: bool(graph_calls(meta, "send")), what="the send to reach Meta")
            invalid = client.get("/api/v1/conversations", params={"limit": "many"}, timeout=2)
            unknown = client.get("/no/such/path", timeout=2)
        with ServiceClient(server.url) as anonymous:
            unauthorized = anonymous.get("/api/v1/conversations", timeout=2)
    finally:
        holding.join(timeout=15)

    assert invalid.status_code == 422
    assert unknown.status_code == 404
    assert unauthorized.status_code == 401


def test_hosts_outside_allowed_hosts_are_refused(start_service: StartService) -> None:
    server = start_service(allowed_hosts="dm.example.com, *.internal.example")
    with ServiceClient(server.url) as client:
        evil = client.get("/health", headers={"Host": "evil.example"})
        allowed = client.get("/health", headers={"Host": "dm.example.com:8000"})
        wildcard = client.get("/health", headers={"Host": "a.internal.example"})

    assert evil.status_code == 400
    assert evil.json()["code"] == "invalid_host"
    assert allowed.status_code == 200
    assert wildcard.status_code == 200


def test_redirects_never_point_at_the_callers_host(service: BackgroundServer) -> None:
    with ServiceClient(service.url) as client:
        response = client.get(
            "/api/v1/conversations/?limit=5",
            headers={"Host": "evil.example"},
            allow_redirects=False,
        )

    assert response.status_code in (301, 307, 308)
    assert response.headers["location"] == "/api/v1/conversations?limit=5"
