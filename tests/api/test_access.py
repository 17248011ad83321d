"""API key: with API_KEY set, everything but the webhook, health and docs needs the Bearer key.

The key is checked before anything else, so these run the service in process."""

import logging
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.conftest import InProcess
from tests.helpers import API_KEY, VERIFY_TOKEN, example_bytes, signed_headers

PROTECTED = [
    ("GET", "/messages", {"params": {"user_id": "1187429836452190"}}),
    ("GET", "/user", {"params": {"user_id": "1187429836452190"}}),
    (
        "POST",
        "/message/send",
        {"params": {"user_id": "1187429836452190"}, "json": {"message": {"text": "hi"}}},
    ),
    ("GET", "/api/v1/media/1", {}),
]


@pytest.fixture
def guarded(in_process: InProcess, service_environment: dict[str, Any]) -> TestClient:
    """The service with API_KEY set, on the test's database."""
    return in_process(service_environment, api_key=API_KEY)


@pytest.mark.parametrize(("method", "path", "kwargs"), PROTECTED, ids=[p[1] for p in PROTECTED])
@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer wrong-key", f"Basic {API_KEY}", API_KEY],
    ids=["none", "wrong", "basic", "bare"],
)
def test_protected_endpoints_refuse_a_missing_or_wrong_key(
    in_process: InProcess, method: str, path: str, kwargs: dict, authorization: str | None
) -> None:
    # No database at all: the refusal comes before anything would need one.
    client = in_process(api_key=API_KEY)
    headers = {"Authorization": authorization} if authorization else {}

    response = client.request(method, path, headers=headers, **kwargs)

    assert response.status_code == 401
    assert response.json()["code"] == "unauthorized"
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert API_KEY not in response.text


def test_the_right_key_is_let_through(guarded: TestClient) -> None:
    response = guarded.get(
        "/messages",
        params={"user_id": "1187429836452190"},
        headers={"Authorization": f"Bearer {API_KEY}"},
    )

    assert response.status_code == 404  # past the key check: there are no messages yet
    assert response.json()["code"] == "messages_not_found"


def test_webhook_health_ready_and_docs_need_no_key(guarded: TestClient) -> None:
    params = {"hub.mode": "subscribe", "hub.challenge": "7", "hub.verify_token": VERIFY_TOKEN}
    body = example_bytes("text")

    assert guarded.get("/webhook", params=params).status_code == 200
    assert guarded.post("/webhook", content=body, headers=signed_headers(body)).status_code == 200
    assert guarded.get("/health").status_code == 200
    assert guarded.get("/ready").status_code == 200
    assert guarded.get("/docs").status_code == 200
    assert guarded.get("/openapi.json").status_code == 200


def test_without_an_api_key_the_service_runs_and_warns(
    in_process: InProcess, service_environment: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        client = in_process(service_environment, api_key=None, lifespan=True)
    response = client.get("/messages", params={"user_id": "1187429836452190"})

    assert response.status_code == 404
    assert "API_KEY is not set" in caplog.text


def test_with_an_api_key_there_is_no_warning(
    in_process: InProcess, service_environment: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        in_process(service_environment, api_key=API_KEY, lifespan=True)

    assert "API_KEY is not set" not in caplog.text


def test_a_protected_route_refuses_a_request_the_key_check_did_not_pass(
    in_process: InProcess, service_environment: dict[str, Any]
) -> None:
    # The route's own guard, behind ApiKeyMiddleware: a request that reached it without
    # the middleware's mark (it never ran, or found no key) is refused all the same.
    client = in_process(service_environment, api_key=API_KEY)
    assert client.get("/health").status_code == 200  # builds the middleware stack
    app: Any = client.app
    unmarked = app.middleware_stack
    while type(unmarked).__name__ != "ApiKeyMiddleware":
        unmarked = unmarked.app
    unmarked.api_key = None  # the middleware lets everything through, marked as carrying it

    def forget_the_mark(original: Any) -> Any:
        async def call(scope: Any, receive: Any, send: Any) -> None:
            scope.get("state", {}).pop("api_key_valid", None)
            await original(scope, receive, send)

        return call

    unmarked.app = forget_the_mark(unmarked.app)

    response = client.get("/messages", params={"user_id": "1187429836452190"})

    assert response.status_code == 401
    assert response.json()["code"] == "unauthorized"
