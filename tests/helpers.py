"""Plain builders and clients the tests share."""

import copy
import json
from pathlib import Path
from types import TracebackType
from typing import Any

import requests

from app.security import sign_body

ACCOUNT_ID = "17841400123456789"  # the business IG_ID of the example payloads
CUSTOMER_ID = "1187429836452190"  # the customer of the example payloads
APP_SECRET = "test-app-secret"
USER_TOKEN = "IGAAtest-user-token"
VERIFY_TOKEN = "test-verify-token"
API_KEY = "test-api-key"

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
