"""Plain builders and clients the tests share."""

import copy
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any

import requests
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models import User
from app.security import sign_body

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


def add_fault(meta: ServiceClient, **fault: Any) -> None:
    response = meta.post("/_sandbox/faults", json=fault)
    assert response.status_code in (200, 201), response.text


class Clock:
    """A controllable clock, starting a moment after the real one (so what the tests queue
    with real time is due)."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC) + timedelta(seconds=1)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


def wait_until(condition: Callable[[], bool], *, timeout: float = 10, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or condition}")
        time.sleep(0.02)


def wait_for_profiles(db: Session, *user_ids: str, timeout: float = 10) -> None:
    """Until the background fetcher has fetched (or been refused) these users' profiles."""

    def fetched() -> bool:
        db.expire_all()
        rows = db.scalars(select(User).where(User.id.in_(user_ids))).all()
        db.commit()
        return len(rows) == len(user_ids) and all(row.fetched_at is not None for row in rows)

    wait_until(fetched, timeout=timeout, what=f"profiles of {', '.join(user_ids)}")
