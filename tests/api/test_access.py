"""API key: with API_KEY set, everything but the webhook, health and docs needs the Bearer key."""

import logging

import pytest

from app.sandbox.server import BackgroundServer
from tests.conftest import StartService
from tests.helpers import API_KEY, VERIFY_TOKEN, ServiceClient, example_bytes

PROTECTED = [
    ("GET", "/messages", {"params": {"user_id": "1187429836452190"}}),
    ("GET", "/user", {"params": {"user_id": "1187429836452190"}}),
    (
        "POST",
        "/message/send",
        {"params": {"user_id": "1187429836452190"}, "json": {"message": {"text": "hi"}}},
    ),
]


@pytest.fixture
def guarded(start_service: StartService) -> BackgroundServer:
    return start_service(api_key=API_KEY)


@pytest.mark.parametrize(("method", "path", "kwargs"), PROTECTED, ids=[p[1] for p in PROTECTED])
@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer wrong-key", f"Basic {API_KEY}", API_KEY],
    ids=["none", "wrong", "basic", "bare"],
)
def test_protected_endpoints_refuse_a_missing_or_wrong_key(
    guarded: BackgroundServer, method: str, path: str, kwargs: dict, authorization: str | None
) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    with ServiceClient(guarded.url) as client:
        response = client.request(method, path, headers=headers, **kwargs)

    assert response.status_code == 401
    assert response.json()["code"] == "unauthorized"
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert API_KEY not in response.text


def test_the_right_key_is_let_through(guarded: BackgroundServer) -> None:
    with ServiceClient(guarded.url, api_key=API_KEY) as client:
        response = client.get("/messages", params={"user_id": "1187429836452190"})

    assert response.status_code == 404  # past the key check: there are no messages yet


def test_webhook_health_ready_and_docs_need_no_key(guarded: BackgroundServer) -> None:
    params = {"hub.mode": "subscribe", "hub.challenge": "7", "hub.verify_token": VERIFY_TOKEN}
    with ServiceClient(guarded.url) as client:
        assert client.get("/webhook", params=params).status_code == 200
        assert client.deliver(example_bytes("text")).status_code == 200
        assert client.get("/health").status_code == 200
        assert client.get("/ready").status_code == 200
        assert client.get("/docs").status_code == 200
        assert client.get("/openapi.json").status_code == 200


def test_without_an_api_key_the_service_runs_and_warns(
    start_service: StartService, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        server = start_service(api_key=None)
    with ServiceClient(server.url) as client:
        assert client.get("/messages", params={"user_id": "1187429836452190"}).status_code == 404

    assert "API_KEY is not set" in caplog.text


def test_with_an_api_key_there_is_no_warning(
    start_service: StartService, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        start_service(api_key=API_KEY)

    assert "API_KEY is not set" not in caplog.text
