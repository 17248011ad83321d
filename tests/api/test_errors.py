"""Every error is JSON with `detail` and `code`; no secret ever reaches a log or an answer."""

import logging
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from app.models import Message
from app.repositories import messages
from tests import stack as shared
from tests.conftest import InProcess, StartService
from tests.helpers import (
    API_KEY,
    APP_SECRET,
    USER_TOKEN,
    VERIFY_TOKEN,
    ServiceClient,
    count_rows,
    customer_writes,
    example_bytes,
    new_customer,
    signed_headers,
)


def test_unknown_paths_and_methods_answer_json(service_in_process: TestClient) -> None:
    missing = service_in_process.get("/nope")
    wrong_method = service_in_process.delete("/messages")

    assert (missing.status_code, missing.json()) == (
        404,
        {"detail": "Not Found", "code": "not_found"},
    )
    assert wrong_method.status_code == 405
    assert wrong_method.json()["code"] == "method_not_allowed"


def test_oversize_bodies_are_refused_on_every_endpoint(in_process: InProcess) -> None:
    # No database and no Graph API behind it: refused before either is needed.
    settings = shared.service_settings(database_url="", graph_url=shared.NOWHERE_URL)
    client = in_process(settings, max_body_bytes=1024, max_api_body_bytes=1024)
    api = client.post(
        "/message/send",
        params={"user_id": "1187429836452190"},
        json={"message": {"text": "x" * 2000}},
    )
    webhook = client.post("/webhook", content=b"{" + b" " * 2000 + b"}")

    assert (api.status_code, api.json()["code"]) == (413, "payload_too_large")
    assert "MAX_API_BODY_BYTES" in api.json()["detail"]
    assert (webhook.status_code, webhook.json()["code"]) == (413, "payload_too_large")
    assert "MAX_BODY_BYTES" in webhook.json()["detail"]


def test_secrets_appear_in_no_log_line_and_no_answer(
    start_service: StartService, meta: ServiceClient, caplog: pytest.LogCaptureFixture
) -> None:
    secrets = [APP_SECRET, USER_TOKEN, VERIFY_TOKEN, API_KEY]
    answers: list[str] = []
    with caplog.at_level(logging.DEBUG):
        server = start_service(api_key=API_KEY)
        customer = new_customer(meta, username="anna")
        customer_writes(meta, customer["id"], "hi")
        with ServiceClient(server.url, api_key=API_KEY) as client:
            answers.append(client.get("/user", params={"user_id": customer["id"]}).text)
            answers.append(client.get("/messages", params={"user_id": customer["id"]}).text)
            answers.append(
                client.post(
                    "/message/send",
                    params={"user_id": customer["id"]},
                    json={"message": {"text": "ok"}},
                ).text
            )
            answers.append(
                client.post("/webhook", data=b"{}", headers=signed_headers(b"{}", "wrong")).text
            )
            answers.append(client.deliver(example_bytes("text")).text)
            answers.append(
                client.get(
                    "/webhook",
                    params={"hub.mode": "subscribe", "hub.challenge": "1", "hub.verify_token": "x"},
                ).text
            )
        with ServiceClient(server.url) as anonymous:
            answers.append(anonymous.get("/messages", params={"user_id": customer["id"]}).text)
        revoked = start_service(instagram_user_token="IGAA-revoked-token", api_key=None)
        with ServiceClient(revoked.url) as client:
            answers.append(client.get("/user", params={"user_id": "1999999999999998"}).text)

    logged = caplog.text
    assert "instagram" in logged  # the Graph calls were logged...
    for secret in [*secrets, "IGAA-revoked-token"]:
        assert secret not in logged  # ...but never with a secret
        for answer in answers:
            assert secret not in answer


def test_an_unexpected_error_is_a_500_in_the_error_shape_that_tells_nothing_inside(
    api: ServiceClient,
    db: Session,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    assert api.deliver(example_bytes("text")).status_code == 200

    def broken(*_: Any, **__: Any) -> None:
        raise RuntimeError("a bug near the private table messages_internal")

    monkeypatch.setattr(messages, "latest_visible", broken)

    response = api.get("/messages", params={"user_id": "1187429836452190"})

    assert response.status_code == 500
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"detail": "Internal server error.", "code": "internal_error"}
    assert "messages_internal" not in response.text
    # The log has what the answer does not: the error and where it came from.
    [logged] = [record for record in caplog.records if record.getMessage() == "unhandled error"]
    assert logged.levelname == "ERROR"
    assert logged.exc_info is not None
    assert "messages_internal" in str(logged.exc_info[1])
    assert count_rows(db, Message) == 1  # a read: nothing changed
