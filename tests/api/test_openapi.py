"""`/docs` and the OpenAPI document list every endpoint, with the README's samples."""

import pytest

from tests.helpers import ServiceClient

EXPECTED = {
    "/webhook": {"get", "post"},
    "/messages": {"get"},
    "/user": {"get"},
    "/message/send": {"post"},
    "/health": {"get"},
    "/ready": {"get"},
}


@pytest.fixture
def openapi(api: ServiceClient) -> dict:
    return api.get("/openapi.json").json()


def test_every_endpoint_is_documented_with_a_summary_and_description(openapi: dict) -> None:
    paths = openapi["paths"]

    assert {path: set(methods) for path, methods in paths.items()} == EXPECTED
    for path, methods in paths.items():
        for method, operation in methods.items():
            assert operation.get("summary"), (method, path)
            assert operation.get("description"), (method, path)


def test_the_original_samples_are_the_examples(openapi: dict) -> None:
    paths = openapi["paths"]
    delivery = paths["/webhook"]["post"]["requestBody"]["content"]["application/json"]["example"]
    assert delivery["entry"][0]["messaging"][0]["message"]["text"] == "test message webhook"
    schemas = openapi["components"]["schemas"]
    assert schemas["SeedSendRequest"]["examples"][0]["message"] == {"text": "test send text by API"}
    assert schemas["SeedMessageRead"]["examples"][0]["sender_username"] == "test_user6023"
    assert schemas["SeedUserRead"]["examples"][0]["username"] == "test_user6023"


def test_errors_are_documented_with_their_body(openapi: dict) -> None:
    send = openapi["paths"]["/message/send"]["post"]["responses"]

    for status in ("401", "404", "409", "422", "429", "502", "503", "504"):
        assert send[status]["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorRead")


def test_the_bearer_scheme_is_declared_for_the_authorize_button(openapi: dict) -> None:
    schemes = openapi["components"]["securitySchemes"]

    assert schemes["ApiKey"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "`Authorization: Bearer <API_KEY>` (required when API_KEY is set).",
    }
    assert openapi["paths"]["/messages"]["get"]["security"] == [{"ApiKey": []}]
    assert "security" not in openapi["paths"]["/webhook"]["post"]


def test_docs_page_is_served(api: ServiceClient) -> None:
    response = api.get("/docs")

    assert response.status_code == 200
    assert "swagger" in response.text.lower()
