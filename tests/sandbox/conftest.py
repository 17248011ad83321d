"""Run the sandbox and a stand-in webhook receiver over real HTTP, once per session."""

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import requests
from fastapi import FastAPI, Request
from fastapi.responses import PlainTextResponse

from app.sandbox import SandboxConfig, create_sandbox_app
from app.sandbox.server import BackgroundServer
from app.security import signature_matches
from tests.stack import InFlight

TOKEN = "test-user-token"
APP_SECRET = "test-app-secret"
ACCOUNT_ID = "17841400000000042"
APP_SCOPED_ID = "5550001112223334"
GRAPH = "/v22.0"

# Variables SandboxConfig reads; cleared so the developer's shell or `.env` cannot leak in.
CONFIG_ENV_VARS = (
    "INSTAGRAM_USER_TOKEN",
    "INSTAGRAM_APP_SECRET",
    "INSTAGRAM_ACCOUNT_ID",
    "SANDBOX_ACCESS_TOKEN",
    "SANDBOX_APP_SECRET",
    "SANDBOX_ACCOUNT_ID",
    "SANDBOX_ACCOUNT_USERNAME",
    "SANDBOX_ACCOUNT_NAME",
    "SANDBOX_APP_SCOPED_ID",
    "SANDBOX_WEBHOOK_URL",
    "SANDBOX_LATENCY_MS",
    "SANDBOX_ECHO_MODE",
)


@dataclass(frozen=True)
class ReceivedWebhook:
    """One POST as the service would see it: raw bytes and headers."""

    body: bytes
    headers: dict[str, str]
    received_at: float


def signed_json(webhook: ReceivedWebhook) -> dict[str, Any]:
    """The delivery's JSON, after checking it is signed with the app secret."""
    assert webhook.headers["content-type"] == "application/json"
    assert signature_matches(
        secret=APP_SECRET, body=webhook.body, header=webhook.headers["x-hub-signature-256"]
    )
    return json.loads(webhook.body)


class WebhookReceiver:
    """Plays the service's `POST /webhook`: records deliveries, answers at once or, while
    `hold()` is in force, only once `release()` is called (a slow service)."""

    def __init__(self) -> None:
        self.url = ""  # known once the server runs
        self._deliveries: list[ReceivedWebhook] = []
        self._condition = threading.Condition()
        self._answering = threading.Event()
        self._answering.set()
        self.app = FastAPI()
        self.app.add_api_route("/webhook", self.receive, methods=["POST"])

    async def receive(self, request: Request) -> PlainTextResponse:
        """Record the raw delivery, then answer like Meta's sample app."""
        webhook = ReceivedWebhook(
            body=await request.body(),
            headers={key.lower(): value for key, value in request.headers.items()},
            received_at=time.monotonic(),
        )
        with self._condition:
            self._deliveries.append(webhook)
            self._condition.notify_all()
        while not self._answering.is_set():
            await asyncio.sleep(0.005)
        return PlainTextResponse("EVENT_RECEIVED")

    def hold(self) -> None:
        """Answer no delivery until `release()`."""
        self._answering.clear()

    def release(self) -> None:
        self._answering.set()

    @property
    def deliveries(self) -> list[ReceivedWebhook]:
        with self._condition:
            return list(self._deliveries)

    def wait_for(self, count: int, *, timeout: float = 5) -> list[ReceivedWebhook]:
        """Block until `count` deliveries arrived (fail the test after `timeout`)."""
        with self._condition:
            arrived = self._condition.wait_for(lambda: len(self._deliveries) >= count, timeout)
            assert arrived, f"expected {count} webhook(s), got {len(self._deliveries)}"
            return list(self._deliveries)

    def clear(self) -> None:
        self.release()
        with self._condition:
            self._deliveries.clear()


class SandboxClient:
    """Thin HTTP helpers for the sandbox under test."""

    def __init__(self, url: str, requests_in_flight: InFlight) -> None:
        self.url = url
        self.http = requests.Session()
        self._in_flight = requests_in_flight

    def graph(
        self, method: str, path: str, *, token: str | None = TOKEN, **kwargs: Any
    ) -> requests.Response:
        """Call a Graph route (`path` after the version) with a Bearer token."""
        headers = kwargs.pop("headers", {})
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return self.http.request(
            method, f"{self.url}{GRAPH}{path}", headers=headers, timeout=5, **kwargs
        )

    def send(self, body: Any, **kwargs: Any) -> requests.Response:
        """POST to the Send API via `/me/messages`."""
        return self.graph("POST", "/me/messages", json=body, **kwargs)

    def settle(self) -> None:
        """Until the sandbox has finished everything it was asked (an echo it sends after
        answering the Send API included)."""
        self._in_flight.wait_idle()

    def control(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        """Call a `/_sandbox` route."""
        return self.http.request(method, f"{self.url}/_sandbox{path}", timeout=5, **kwargs)

    def create_customer(self, **fields: Any) -> dict[str, Any]:
        response = self.control("POST", "/customers", json=fields)
        assert response.status_code == 201, response.text
        return response.json()

    def customer_event(self, igsid: str, route: str, **body: Any) -> dict[str, Any]:
        """POST `/customers/{igsid}/{route}` (messages, reactions, reads…), expecting 201."""
        response = self.control("POST", f"/customers/{igsid}/{route}", json=body)
        assert response.status_code == 201, response.text
        return response.json()

    def customer_writes(self, igsid: str, **body: Any) -> dict[str, Any]:
        """The customer messages the business (default: a text, webhook delivered)."""
        body.setdefault("text", "Hello!")
        return self.customer_event(igsid, "messages", **body)

    def messaged_customer(self, **fields: Any) -> dict[str, Any]:
        """A customer who wrote just now, without a webhook: window open, consent given."""
        customer = self.create_customer(**fields)
        self.customer_writes(customer["id"], deliver=False)
        return customer

    def set_config(self, **settings: Any) -> dict[str, Any]:
        response = self.control("PUT", "/config", json=settings)
        assert response.status_code == 200, response.text
        return response.json()


@pytest.fixture(scope="session")
def receiver() -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver()
    with BackgroundServer(receiver.app) as server:
        receiver.url = f"{server.url}/webhook"
        yield receiver


def make_config(**overrides: Any) -> SandboxConfig:
    """A config that ignores the environment and `.env`."""
    values: dict[str, Any] = {
        "access_token": TOKEN,
        "app_secret": APP_SECRET,
        "account_id": ACCOUNT_ID,
        "app_scoped_id": APP_SCOPED_ID,
        **overrides,
    }
    with pytest.MonkeyPatch.context() as env:
        for name in CONFIG_ENV_VARS:
            env.delenv(name, raising=False)
        return SandboxConfig(_env_file=None, **values)


@dataclass(frozen=True)
class SandboxServer:
    url: str
    requests_in_flight: InFlight


@pytest.fixture(scope="session")
def sandbox_server(receiver: WebhookReceiver) -> Iterator[SandboxServer]:
    in_flight = InFlight(create_sandbox_app(make_config(webhook_url=receiver.url)))
    with BackgroundServer(in_flight) as server:
        yield SandboxServer(url=server.url, requests_in_flight=in_flight)


@pytest.fixture
def sandbox(sandbox_server: SandboxServer, receiver: WebhookReceiver) -> Iterator[SandboxClient]:
    """The shared sandbox, reset for this test once the last one's calls and echoes are over
    (the reset lets go of calls a fault still holds), with an empty receiver."""
    client = SandboxClient(sandbox_server.url, sandbox_server.requests_in_flight)
    receiver.release()
    assert client.control("POST", "/reset").status_code == 200
    client.settle()
    assert client.control("POST", "/reset").status_code == 200
    receiver.clear()
    yield client
    client.http.close()
