"""`GET /api/v1/events/stream`: Server-Sent Events over real HTTP, resumable, and cheap
enough that hundreds of open streams leave webhooks and reads served."""

import json
import socket
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
from sqlalchemy import delete
from sqlalchemy.orm import Session

from app.models import Event
from app.sandbox import webhooks
from tests.helpers import ACCOUNT_ID, CUSTOMER_ID, ServiceClient

MS = 1745923800000


def say(api: ServiceClient, mid: str, *, at: int = MS) -> None:
    item = webhooks.message_item(
        account_id=ACCOUNT_ID, customer_id=CUSTOMER_ID, mid=mid, timestamp_ms=at, text=mid
    )
    assert api.deliver(webhooks.delivery(account_id=ACCOUNT_ID, items=[item])).status_code == 200


class Stream:
    """An open SSE connection, read frame by frame."""

    def __init__(self, response: requests.Response) -> None:
        self.response = response
        self.lines = response.iter_lines(decode_unicode=True)

    def next_frame(self) -> dict[str, Any]:
        """The next event (comments skipped): its `id`, `event` and decoded `data`."""
        frame: dict[str, Any] = {}
        for line in self.lines:
            if line.startswith(":"):
                continue
            if not line:
                if frame:
                    return frame
                continue
            name, _, value = line.partition(": ")
            frame[name] = json.loads(value) if name == "data" else value
        raise AssertionError("the stream ended")


# Profile fetches write events of their own (profile.updated): these tests leave them out.
MESSAGING = "message.received,message.deleted"


@contextmanager
def stream(api: ServiceClient, **kwargs: Any) -> Iterator[Stream]:
    kwargs["params"] = {"types": MESSAGING, **kwargs.get("params", {})}
    response = api.get("/api/v1/events/stream", stream=True, timeout=(5, 10), **kwargs)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/event-stream")
    try:
        yield Stream(response)
    finally:
        response.close()


def test_a_stream_shows_events_as_they_happen(api: ServiceClient) -> None:
    with stream(api) as events:
        say(api, "m-1")
        frame = events.next_frame()

    [stored] = api.get("/api/v1/events", params={"types": MESSAGING}).json()["data"]
    assert frame["id"] == str(stored["seq"])
    assert frame["event"] == "message.received"
    assert frame["data"] == stored


def test_a_stream_resumes_after_last_event_id(api: ServiceClient) -> None:
    for number in range(3):
        say(api, f"m-{number}", at=MS + number)
    first = api.get("/api/v1/events", params={"types": MESSAGING}).json()["data"][0]["seq"]

    with stream(api, headers={"Last-Event-ID": str(first)}) as events:
        caught_up = [events.next_frame()["data"]["data"]["message"]["mid"] for _ in range(2)]
        say(api, "m-3", at=MS + 3)
        live = events.next_frame()["data"]["data"]["message"]["mid"]

    assert caught_up == ["m-1", "m-2"]
    assert live == "m-3"


def test_a_stream_filters_by_type(api: ServiceClient) -> None:
    with stream(api, params={"types": "message.deleted", "after": 0}) as events:
        say(api, "m-1")
        unsend = webhooks.unsend_item(
            account_id=ACCOUNT_ID, customer_id=CUSTOMER_ID, mid="m-1", timestamp_ms=MS + 1
        )
        api.deliver(webhooks.delivery(account_id=ACCOUNT_ID, items=[unsend]))
        assert events.next_frame()["event"] == "message.deleted"


def test_asking_for_deleted_events_gets_a_reset_event(api: ServiceClient, db: Session) -> None:
    for number in range(3):
        say(api, f"m-{number}", at=MS + number)
    listed = api.get("/api/v1/events", params={"types": MESSAGING}).json()["data"]
    seqs = [event["seq"] for event in listed]
    db.execute(delete(Event).where(Event.seq <= seqs[1]))
    db.commit()

    with stream(api, params={"after": seqs[0]}) as events:
        reset = events.next_frame()
        following = events.next_frame()

    assert reset["event"] == "reset"
    assert reset["data"]["code"] == "events_expired"
    assert seqs[1] <= reset["data"]["after"] < seqs[2]  # from the oldest kept on
    assert following["id"] == str(seqs[2])


def test_a_bad_last_event_id_is_422(api: ServiceClient) -> None:
    response = api.get("/api/v1/events/stream", headers={"Last-Event-ID": "nope"})

    assert response.status_code == 422
    assert response.json()["code"] == "invalid_last_event_id"


def open_raw_stream(base_url: str) -> socket.socket:
    """An SSE request on a bare socket (hundreds of them cost no thread here either)."""
    parts = urlsplit(base_url)
    sock = socket.create_connection((parts.hostname, parts.port), timeout=10)
    request = f"GET /api/v1/events/stream HTTP/1.1\r\nHost: {parts.netloc}\r\n\r\n"
    sock.sendall(request.encode())
    return sock


@pytest.mark.slow
def test_hundreds_of_open_streams_leave_webhooks_and_reads_served(api: ServiceClient) -> None:
    with ExitStack() as open_streams:
        sockets = [open_raw_stream(api.base_url) for _ in range(300)]
        for sock in sockets:
            open_streams.callback(sock.close)
        for sock in sockets:
            assert sock.recv(12).startswith(b"HTTP/1.1 200")  # each one is open

        # With WORKER_THREADS at 100, 300 streams holding a thread each would leave none:
        # these requests would wait (and the client give up) instead of being answered.
        for number in range(20):
            say(api, f"m-{number}", at=MS + number)
            assert api.get(f"/api/v1/messages/m-{number}").status_code == 200

        # Every stream sees the events (the last one's mid among what it was sent).
        for sock in sockets[:: len(sockets) // 10]:
            received = b""
            deadline = time.monotonic() + 10
            while b'"m-19"' not in received and time.monotonic() < deadline:
                received += sock.recv(65536)
            assert b'"m-19"' in received
