"""Plain builders and clients the tests share."""

import copy
import json
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any

import requests
from sqlalchemy import Engine, event, func, select
from sqlalchemy.orm import Session

from app.models import Message, User
from app.sandbox import webhooks
from app.security import sign_body
from app.services.background import WorkerThread

ACCOUNT_ID = "17841400123456789"  # the business IG_ID of the example payloads
CUSTOMER_ID = "1187429836452190"  # the customer of the example payloads
APP_SECRET = "test-app-secret-0123456789abcdef012345"
USER_TOKEN = "IGAAtest-user-token"
VERIFY_TOKEN = "test-verify-token-0123456789abcdef01234"
API_KEY = "test-api-key-0123456789abcdef0123456789"

EXAMPLES = Path(__file__).parent / "fixtures" / "webhooks"


def example(name: str) -> dict[str, Any]:
    """A webhook body shaped like Meta's, from tests/fixtures/webhooks/<name>.json."""
    return json.loads((EXAMPLES / f"{name}.json").read_text())


def example_bytes(name: str) -> bytes:
    return (EXAMPLES / f"{name}.json").read_bytes()


def encode(payload: Any) -> bytes:
    return json.dumps(payload, ensure_ascii=True).encode()


def signed_headers(body: bytes, secret: str = APP_SECRET) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "X-Hub-Signature-256": sign_body(secret=secret, body=body),
    }


def text_message(
    *, mid: str, text: str | None = "hello", timestamp: int = 1745923812000, **fields: Any
) -> dict[str, Any]:
    """A delivery with one customer message, based on text.json."""
    payload = copy.deepcopy(example("text"))
    item = payload["entry"][0]["messaging"][0]
    item["timestamp"] = timestamp
    item["message"] = {"mid": mid, **({"text": text} if text is not None else {}), **fields}
    return payload


def messages_delivery(
    *, customer_id: str, texts: list[str], start_ms: int, prefix: str = "m"
) -> dict[str, Any]:
    """One delivery of the customer's messages `texts`, a millisecond apart, mids
    `<prefix>-0`, `<prefix>-1`..."""
    ids = {"account_id": ACCOUNT_ID, "customer_id": customer_id}
    items = [
        webhooks.message_item(**ids, mid=f"{prefix}-{n}", timestamp_ms=start_ms + n, text=text)
        for n, text in enumerate(texts)
    ]
    return webhooks.delivery(account_id=ACCOUNT_ID, items=items)


class ServiceClient:
    """requests against one base URL (the service or the sandbox)."""

    def __init__(self, base_url: str, *, api_key: str | None = None) -> None:
        self.base_url = base_url
        self.session = requests.Session()
        if api_key:
            self.session.headers["Authorization"] = f"Bearer {api_key}"

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", 30)
        return self.session.request(method, self.base_url + path, **kwargs)

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("POST", path, **kwargs)

    def put(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("PUT", path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("DELETE", path, **kwargs)

    def patch(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("PATCH", path, **kwargs)

    def deliver(
        self, body: bytes | dict[str, Any], *, secret: str = APP_SECRET
    ) -> requests.Response:
        """POST a webhook delivery signed like Meta signs it."""
        raw = body if isinstance(body, bytes) else encode(body)
        return self.post("/webhook", data=raw, headers=signed_headers(raw, secret))

    def close(self) -> None:
        self.session.close()

    def __enter__(self) -> "ServiceClient":
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


# --- the sandbox playing Meta ------------------------------------------------------------------


def new_customer(meta: ServiceClient, **fields: Any) -> dict[str, Any]:
    """A customer known to the sandbox (who has not written yet)."""
    response = meta.post("/_sandbox/customers", json=fields)
    assert response.status_code == 201, response.text
    return response.json()


def customer_writes(
    meta: ServiceClient, customer_id: str, text: str | None = "hello", **fields: Any
) -> dict[str, Any]:
    """The customer sends a message; the sandbox delivers it to the service, which must take it."""
    body = {"text": text, **fields} if text is not None else fields
    response = meta.post(f"/_sandbox/customers/{customer_id}/messages", json=body)
    assert response.status_code == 201, response.text
    result = response.json()
    assert result["delivery"]["status_code"] == 200, result["delivery"]
    return result


def graph_calls(meta: ServiceClient, kind: str | None = None) -> list[dict[str, Any]]:
    """The Graph API calls the service made, optionally of one kind (me, profile, send)."""
    calls = meta.get("/_sandbox/calls").json()
    return [call for call in calls if kind is None or call["kind"] == kind]


def sandbox_sends(meta: ServiceClient) -> list[dict[str, Any]]:
    """The Send API calls the sandbox received (messages and sender actions), with its answers."""
    return meta.get("/_sandbox/sent").json()


def add_fault(meta: ServiceClient, **fault: Any) -> None:
    response = meta.post("/_sandbox/faults", json=fault)
    assert response.status_code in (200, 201), response.text


# --- what the service stored -------------------------------------------------------------------


def count_rows(db: Session, model: type) -> int:
    db.expire_all()
    return db.scalar(select(func.count()).select_from(model)) or 0


def outbound_messages(db: Session) -> list[Message]:
    """The stored outbound messages (sends and echoes), oldest row first."""
    db.expire_all()
    rows = list(
        db.scalars(select(Message).where(Message.direction == "outbound").order_by(Message.id))
    )
    db.commit()
    return rows


class Clock:
    """A controllable clock, starting a moment after the real one (so what the tests queue
    with real time is due)."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC) + timedelta(seconds=1)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


class StatementCounter:
    """The SQL statements an engine runs inside the block (BEGIN and the background workers'
    excluded): what the requests made meanwhile cost."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.statements: list[str] = []

    def _record(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        background = isinstance(threading.current_thread(), WorkerThread)
        if not statement.startswith("BEGIN") and not background:
            self.statements.append(statement)

    def __enter__(self) -> "StatementCounter":
        event.listen(self.engine, "before_cursor_execute", self._record)
        return self

    def __exit__(self, *exc: object) -> None:
        event.remove(self.engine, "before_cursor_execute", self._record)


def wait_until(condition: Callable[[], bool], *, timeout: float = 10, what: str = "") -> None:
    """Until `condition()` holds (looked at again and again, soon at first); fail the test when
    it still does not after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    pause = 0.002
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or condition}")
        time.sleep(pause)
        pause = min(pause * 2, 0.02)


def wait_for_profiles(db: Session, *user_ids: str, timeout: float = 10) -> None:
    """Until the background fetcher has fetched (or been refused) these users' profiles."""

    def fetched() -> bool:
        db.expire_all()
        rows = db.scalars(select(User).where(User.id.in_(user_ids))).all()
        db.commit()
        return len(rows) == len(user_ids) and all(row.fetched_at is not None for row in rows)

    wait_until(fetched, timeout=timeout, what=f"profiles of {', '.join(user_ids)}")
