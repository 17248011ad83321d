"""Every error is JSON with `detail` and `code`; no secret ever reaches a log or an answer."""

import logging

import pytest

from tests.conftest import StartService
from tests.helpers import (
    API_KEY,
    APP_SECRET,
    USER_TOKEN,
    VERIFY_TOKEN,
    ServiceClient,
    customer_writes,
    example_bytes,
    new_customer,
    signed_headers,
)


def test_unknown_paths_and_methods_answer_json(api: ServiceClient) -> None:
    missing = api.get("/nope")
    wrong_method = api.delete("/messages")

    assert (missing.status_code, missing.json()) == (
        404,
        {"detail": "Not Found", "code": "not_found"},
    )
    assert wrong_method.status_code == 405
    assert wrong_method.json()["code"] == "method_not_allowed"


def test_oversize_bodies_are_refused_on_every_endpoint(start_service: StartService) -> None:
    server = start_service(max_body_bytes=1024)
    with ServiceClient(server.url) as client:
        response = client.post(
            "/message/send",
            params={"user_id": "1187429836452190"},
            json={"message": {"text": "x" * 2000}},
        )

    assert response.status_code == 413
    assert response.json()["code"] == "payload_too_large"


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
