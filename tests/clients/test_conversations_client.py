"""The Conversations API methods of the Graph API client, against the sandbox over HTTP."""

from collections.abc import Iterator
from typing import Any

import pytest

from app.clients.instagram import InstagramClient, _endpoint_name
from app.clients.instagram_errors import InstagramError, RateLimitedError
from app.config import Settings
from app.sandbox.server import BackgroundServer
from tests.helpers import USER_TOKEN, ServiceClient, new_customer

START_MS = 1745923800000


@pytest.fixture
def client(sandbox: BackgroundServer) -> Iterator[InstagramClient]:
    settings = Settings(
        _env_file=None,
        allow_open_api=True,
        instagram_user_token=USER_TOKEN,
        instagram_graph_url=sandbox.url,
    )
    made = InstagramClient(settings)
    yield made
    made.close()


def history(meta: ServiceClient, customer_id: str, count: int, **fields: Any) -> list[str]:
    """`count` messages the customer wrote (no webhook), a second apart; mids oldest first."""
    mids = []
    for number in range(count):
        body = {"text": f"m{number}", "deliver": False, "timestamp_ms": START_MS + number * 1000}
        response = meta.post(f"/_sandbox/customers/{customer_id}/messages", json={**body, **fields})
        assert response.status_code == 201, response.text
        mids.append(response.json()["mid"])
    return mids


def test_conversations_and_their_messages_page_with_cursors(
    client: InstagramClient, meta: ServiceClient
) -> None:
    meta.put("/_sandbox/config", json={"conversations_rate_limit": False})
    customers = [new_customer(meta)["id"] for _ in range(3)]
    mids = history(meta, customers[0], 45)
    for customer in customers[1:]:
        history(meta, customer, 1)

    conversations, after = [], None
    while True:
        page = client.list_conversations(limit=2, after=after)
        conversations += page["data"]
        after = page.get("paging", {}).get("cursors", {}).get("after")
        if "next" not in page.get("paging", {}):
            break
    only = client.list_conversations(user_id=customers[0])["data"]
    found, after = [], None
    while True:
        page = client.conversation_messages(only[0]["id"], after=after, limit=20)
        found += page["data"]
        if "next" not in page.get("paging", {}):
            break
        after = page["paging"]["cursors"]["after"]

    assert len(conversations) == 3
    assert {p["id"] for c in conversations for p in c["participants"]["data"]} >= set(customers)
    assert [message["id"] for message in found] == list(reversed(mids))
    assert set(found[0]) == {"id", "created_time"}  # ids and times by default


def test_a_message_is_read_with_fresh_attachment_urls_and_an_old_one_fails(
    client: InstagramClient, meta: ServiceClient
) -> None:
    meta.put("/_sandbox/config", json={"conversations_rate_limit": False})
    customer = new_customer(meta)["id"]
    [old] = history(meta, customer, 1, text=None, attachments=[{"type": "video"}])
    history(meta, customer, 20)

    with pytest.raises(InstagramError) as refused:
        client.get_message(old)
    assert (refused.value.graph_code, refused.value.transient) == (100, False)

    [recent] = history(meta, customer, 1, text=None, attachments=[{"type": "video"}])
    message = client.get_message(recent)
    assert message["from"]["id"] == customer
    assert message["attachments"]["data"][0]["video_data"]["url"].startswith(meta.base_url)


def test_metas_conversations_rate_limit_is_a_transient_rate_limited_error(
    client: InstagramClient, meta: ServiceClient
) -> None:
    client.list_conversations()
    client.list_conversations()

    with pytest.raises(RateLimitedError) as limited:
        client.list_conversations()

    assert (limited.value.graph_code, limited.value.status_code) == (4, 429)
    assert limited.value.transient


def test_opaque_ids_are_checked_and_collapsed_in_metric_names(client: InstagramClient) -> None:
    with pytest.raises(ValueError, match="Graph object id"):
        client.get_message("../me/messages")
    with pytest.raises(ValueError, match="digits"):
        client.list_conversations(user_id="12a")
    mid = "aWdfZAG1faXRlbToxOklHTWVzc2FnZAUlEOjE3ODQxNDAwMTIzNDU2Nzg5OjM0MDI4MjM2Njg0MTcxMDMwMTI0"

    assert _endpoint_name("GET", f"https://graph.test/v25.0/{mid}") == "GET /v25.0/{id}"
    assert _endpoint_name("GET", f"https://g.test/v25.0/{mid}/messages") == (
        "GET /v25.0/{id}/messages"
    )
    assert _endpoint_name("GET", "https://g.test/refresh_access_token") == (
        "GET /refresh_access_token"
    )
