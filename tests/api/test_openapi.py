"""The OpenAPI document: valid, complete (summaries, descriptions, examples, error bodies),
and every route in it answered as documented when called."""

from collections.abc import Callable
from typing import Any

import pytest
import requests
from fastapi.testclient import TestClient
from openapi_spec_validator import validate

from tests.helpers import (
    ACCOUNT_ID,
    VERIFY_TOKEN,
    ServiceClient,
    customer_writes,
    example_bytes,
    new_customer,
    wait_for_profiles,
)

SEED = {("get", "/messages"), ("get", "/user"), ("post", "/message/send")}


@pytest.fixture
def openapi(service_in_process: TestClient) -> dict[str, Any]:
    response = service_in_process.get("/openapi.json")
    assert response.status_code == 200
    return response.json()


def operations(openapi: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (method, path): operation
        for path, methods in openapi["paths"].items()
        for method, operation in methods.items()
    }


def resolve(openapi: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    if "$ref" in schema:
        return openapi["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
    return schema


def test_the_document_is_valid_openapi(openapi: dict[str, Any]) -> None:
    validate(openapi)


def test_every_operation_has_a_summary_a_description_and_examples(openapi: dict[str, Any]) -> None:
    for (method, path), operation in operations(openapi).items():
        where = f"{method.upper()} {path}"
        assert operation.get("summary"), where
        assert operation.get("description"), where
        body = operation.get("requestBody", {}).get("content", {}).get("application/json")
        if body is not None:
            assert body.get("example") or resolve(openapi, body["schema"]).get("examples"), where
        for status, response in operation["responses"].items():
            content = response.get("content", {}).get("application/json")
            if status.startswith("2") and content is not None:
                schema = content.get("schema", {})
                items = schema.get("items", {})
                documented = (
                    content.get("example")
                    or resolve(openapi, schema).get("examples")
                    or resolve(openapi, items).get("examples")
                )
                assert documented, f"{where} {status}"


def test_errors_are_documented_with_the_error_body(openapi: dict[str, Any]) -> None:
    for (method, path), operation in operations(openapi).items():
        if path.startswith("/api/v1") or (method, path) in SEED:
            for status in ("401", "422"):
                schema = operation["responses"][status]["content"]["application/json"]["schema"]
                assert schema["$ref"].endswith(("/ErrorRead", "/HTTPValidationError")), (
                    path,
                    status,
                )


def test_the_original_endpoints_are_deprecated_and_the_new_ones_are_not(
    openapi: dict[str, Any],
) -> None:
    for key, operation in operations(openapi).items():
        assert operation.get("deprecated", False) == (key in SEED), key


def test_the_bearer_scheme_is_declared_for_the_authorize_button(openapi: dict[str, Any]) -> None:
    assert openapi["components"]["securitySchemes"]["ApiKey"]["scheme"] == "bearer"
    for (_, path), operation in operations(openapi).items():
        protected = path.startswith("/api/v1") or path in {"/messages", "/user", "/message/send"}
        assert (operation.get("security") == [{"ApiKey": []}]) == protected, path


def test_the_original_samples_are_the_examples(openapi: dict[str, Any]) -> None:
    paths = openapi["paths"]
    delivery = paths["/webhook"]["post"]["requestBody"]["content"]["application/json"]["example"]
    assert delivery["entry"][0]["messaging"][0]["message"]["text"] == "test message webhook"
    schemas = openapi["components"]["schemas"]
    assert schemas["SeedSendRequest"]["examples"][0]["message"] == {"text": "test send text by API"}
    assert schemas["SeedMessageRead"]["examples"][0]["sender_username"] == "test_user6023"
    assert schemas["SeedUserRead"]["examples"][0]["username"] == "test_user6023"


def test_docs_page_is_served(service_in_process: TestClient) -> None:
    response = service_in_process.get("/docs")

    assert response.status_code == 200
    assert "swagger" in response.text.lower()


# --- every route, called once ------------------------------------------------------------------

Call = Callable[[ServiceClient, dict[str, str]], requests.Response]

CALLS: dict[tuple[str, str], Call] = {
    ("get", "/webhook"): lambda api, ids: api.get(
        "/webhook",
        params={
            "hub.mode": "subscribe",
            "hub.challenge": "1158201444",
            "hub.verify_token": VERIFY_TOKEN,
        },
    ),
    ("post", "/webhook"): lambda api, ids: api.deliver(example_bytes("reaction_react")),
    ("get", "/messages"): lambda api, ids: api.get(
        "/messages", params={"user_id": ids["customer"]}
    ),
    ("get", "/user"): lambda api, ids: api.get("/user", params={"user_id": ids["customer"]}),
    ("post", "/message/send"): lambda api, ids: api.post(
        "/message/send", params={"user_id": ids["customer"]}, json={"message": {"text": "hi"}}
    ),
    ("get", "/health"): lambda api, ids: api.get("/health"),
    ("get", "/ready"): lambda api, ids: api.get("/ready"),
    ("get", "/api/v1/conversations"): lambda api, ids: api.get("/api/v1/conversations"),
    ("get", "/api/v1/conversations/{customer_id}"): lambda api, ids: api.get(
        f"/api/v1/conversations/{ids['customer']}"
    ),
    ("get", "/api/v1/conversations/{customer_id}/messages"): lambda api, ids: api.get(
        f"/api/v1/conversations/{ids['customer']}/messages"
    ),
    ("post", "/api/v1/conversations/{customer_id}/messages"): lambda api, ids: api.post(
        f"/api/v1/conversations/{ids['customer']}/messages", json={"text": "hello"}
    ),
    ("post", "/api/v1/conversations/{customer_id}/reactions"): lambda api, ids: api.post(
        f"/api/v1/conversations/{ids['customer']}/reactions", json={"mid": ids["mid"]}
    ),
    ("delete", "/api/v1/conversations/{customer_id}/reactions/{mid}"): lambda api, ids: api.delete(
        f"/api/v1/conversations/{ids['customer']}/reactions/{ids['mid']}"
    ),
    ("post", "/api/v1/conversations/{customer_id}/actions"): lambda api, ids: api.post(
        f"/api/v1/conversations/{ids['customer']}/actions", json={"action": "typing_on"}
    ),
    ("get", "/api/v1/messages/{mid}"): lambda api, ids: api.get(f"/api/v1/messages/{ids['mid']}"),
    ("get", "/api/v1/users/{user_id}"): lambda api, ids: api.get(
        f"/api/v1/users/{ids['customer']}"
    ),
    ("post", "/api/v1/accounts/{account_id}/sync"): lambda api, ids: api.post(
        f"/api/v1/accounts/{ACCOUNT_ID}/sync", json={"days": 7}
    ),
    ("get", "/api/v1/accounts/{account_id}/sync"): lambda api, ids: api.get(
        f"/api/v1/accounts/{ACCOUNT_ID}/sync"
    ),
    ("get", "/api/v1/accounts/{account_id}/sync/{job_id}"): lambda api, ids: api.get(
        f"/api/v1/accounts/{ACCOUNT_ID}/sync"
        f"/{api.get(f'/api/v1/accounts/{ACCOUNT_ID}/sync').json()['data'][0]['id']}"
    ),
    ("get", "/api/v1/events"): lambda api, ids: api.get("/api/v1/events"),
    ("get", "/api/v1/media/{media_id}"): lambda api, ids: api.get(
        f"/api/v1/media/{ids['media']}", allow_redirects=False
    ),
    ("get", "/api/v1/events/stream"): lambda api, ids: _opened(api, "/api/v1/events/stream"),
    ("post", "/api/v1/webhook-endpoints"): lambda api, ids: api.post(
        "/api/v1/webhook-endpoints", json={"url": NOWHERE_HOOK}
    ),
    ("get", "/api/v1/webhook-endpoints"): lambda api, ids: api.get("/api/v1/webhook-endpoints"),
    ("get", "/api/v1/webhook-endpoints/{endpoint_id}"): lambda api, ids: api.get(
        f"/api/v1/webhook-endpoints/{_endpoint(api)}"
    ),
    ("patch", "/api/v1/webhook-endpoints/{endpoint_id}"): lambda api, ids: api.patch(
        f"/api/v1/webhook-endpoints/{_endpoint(api)}", json={"description": "x"}
    ),
    ("delete", "/api/v1/webhook-endpoints/{endpoint_id}"): lambda api, ids: api.delete(
        f"/api/v1/webhook-endpoints/{_endpoint(api)}"
    ),
    ("post", "/api/v1/webhook-endpoints/{endpoint_id}/rotate-secret"): lambda api, ids: api.post(
        f"/api/v1/webhook-endpoints/{_endpoint(api)}/rotate-secret"
    ),
    ("post", "/api/v1/webhook-endpoints/{endpoint_id}/test"): lambda api, ids: api.post(
        f"/api/v1/webhook-endpoints/{_endpoint(api)}/test"
    ),
    ("post", "/api/v1/webhook-endpoints/{endpoint_id}/replay"): lambda api, ids: api.post(
        f"/api/v1/webhook-endpoints/{_endpoint(api)}/replay", json={"since_seq": 0}
    ),
    ("get", "/api/v1/webhook-endpoints/{endpoint_id}/deliveries"): lambda api, ids: api.get(
        f"/api/v1/webhook-endpoints/{_endpoint(api)}/deliveries"
    ),
}

NOWHERE_HOOK = "http://127.0.0.1:9/hook"  # nothing listens: deliveries just fail


def _endpoint(api: ServiceClient) -> str:
    created = api.post("/api/v1/webhook-endpoints", json={"url": NOWHERE_HOOK})
    endpoint_id: str = created.json()["id"]
    return endpoint_id


def _opened(api: ServiceClient, path: str) -> requests.Response:
    """A streaming answer's status and headers (its body never ends)."""
    response = api.get(path, stream=True)
    response.close()
    return response


def test_every_route_in_the_document_answers_as_documented(
    api: ServiceClient, meta: ServiceClient, db: Any
) -> None:
    documented = operations(api.get("/openapi.json").json())  # the running service's own
    calls = {key: call for key, call in CALLS.items() if key in documented}
    # A route added without a call here fails this test: every route gets exercised.
    assert set(documented) - set(CALLS) == set()
    customer = new_customer(meta, username="walker")
    image = customer_writes(meta, customer["id"], None, attachments=[{"type": "image"}])["mid"]
    mid = customer_writes(meta, customer["id"], "hello")["mid"]
    wait_for_profiles(db, customer["id"], ACCOUNT_ID)
    [attachment] = api.get(f"/api/v1/messages/{image}").json()["attachments"]
    ids = {"customer": customer["id"], "mid": mid, "media": attachment["id"]}

    for (method, path), call in calls.items():
        response = call(api, ids)
        statuses = documented[(method, path)]["responses"]
        assert str(response.status_code) in statuses, (
            method,
            path,
            response.status_code,
            response.text,
        )
        assert response.status_code < 400, (method, path, response.text)
