"""The sandbox's Conversations API (Meta's rules) and its CDN of attachment files."""

from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.sandbox.conftest import TOKEN, SandboxClient

START_MS = 1745923800000


def history(sandbox: SandboxClient, customer_id: str, count: int) -> list[str]:
    """`count` messages the customer wrote (no webhook), a second apart; mids oldest first."""
    return [
        sandbox.customer_writes(
            customer_id, text=f"message {n}", deliver=False, timestamp_ms=START_MS + n * 1000
        )["mid"]
        for n in range(count)
    ]


def all_messages(sandbox: SandboxClient, conversation_id: str, **params: Any) -> list[dict]:
    """Every message of a conversation, following `paging.next` verbatim."""
    response = sandbox.graph("GET", f"/{conversation_id}/messages", params=params)
    found = []
    while True:
        assert response.status_code == 200, response.text
        body = response.json()
        found += body["data"]
        next_url = body.get("paging", {}).get("next")
        if not next_url:
            return found
        response = sandbox.http.get(
            next_url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=5
        )


def test_conversations_list_every_message_id_and_content_for_the_20_newest_only(
    sandbox: SandboxClient,
) -> None:
    sandbox.set_config(conversations_rate_limit=False)
    customer = sandbox.create_customer(username="olga")
    mids = history(sandbox, customer["id"], 60)

    listed = sandbox.graph(
        "GET",
        "/me/conversations",
        params={"platform": "instagram", "fields": "participants,updated_time"},
    ).json()["data"]
    [conversation] = listed
    assert conversation["updated_time"] == "2025-04-29T10:50:59+0000"
    assert {p["id"] for p in conversation["participants"]["data"]} >= {customer["id"]}

    messages = all_messages(
        sandbox, conversation["id"], fields="id,created_time,from,message", limit=25
    )

    assert [m["id"] for m in messages] == list(reversed(mids))  # newest first, all 60
    with_content = [m for m in messages if "message" in m]
    assert [m["message"] for m in with_content] == [f"message {n}" for n in range(59, 39, -1)]
    assert all(set(m) == {"id", "created_time"} for m in messages[20:])


def test_a_message_fetch_gives_fresh_urls_for_the_20_newest_and_an_error_for_older(
    sandbox: SandboxClient,
) -> None:
    sandbox.set_config(conversations_rate_limit=False)
    customer = sandbox.create_customer()
    written = sandbox.customer_writes(
        customer["id"],
        text=None,
        attachments=[{"type": "image"}],
        deliver=False,
        timestamp_ms=START_MS - 1000,
    )
    url = written["payload"]["entry"][0]["messaging"][0]["message"]["attachments"][0]["payload"][
        "url"
    ]

    node = sandbox.graph("GET", f"/{written['mid']}", params={"fields": "id,attachments"}).json()
    [attachment] = node["attachments"]["data"]
    fresh = attachment["image_data"]["url"]
    assert fresh != url
    assert parse_qs(urlsplit(fresh).query)["asset_id"] == parse_qs(urlsplit(url).query)["asset_id"]
    assert sandbox.http.get(fresh, timeout=5).content.startswith(b"\x89PNG")

    history(sandbox, customer["id"], 20)  # now 20 newer messages
    older = sandbox.graph("GET", f"/{written['mid']}", params={"fields": "id,attachments"})
    assert older.status_code == 400
    assert older.json()["error"]["code"] == 100


def test_more_than_two_conversations_calls_a_second_are_refused_with_code_4(
    sandbox: SandboxClient,
) -> None:
    params = {"platform": "instagram"}
    answers = [sandbox.graph("GET", "/me/conversations", params=params) for _ in range(3)]

    assert [a.status_code for a in answers][:2] == [200, 200]
    assert answers[2].status_code == 400
    assert answers[2].json()["error"]["code"] == 4
    calls = sandbox.control("GET", "/calls").json()
    assert [call["kind"] for call in calls] == ["conversations"] * 3

    sandbox.set_config(conversations_rate_limit=False)
    again = [sandbox.graph("GET", "/me/conversations", params=params) for _ in range(5)]
    assert {a.status_code for a in again} == {200}


def test_the_cdn_serves_real_files_that_expire_or_turn_into_an_error_page(
    sandbox: SandboxClient,
) -> None:
    customer = sandbox.create_customer()
    written = sandbox.customer_writes(
        customer["id"],
        text=None,
        attachments=[{"type": "image"}, {"type": "video"}, {"type": "file"}],
        deliver=False,
    )
    attachments = written["payload"]["entry"][0]["messaging"][0]["message"]["attachments"]
    image, video, document = (a["payload"]["url"] for a in attachments)

    assert sandbox.http.get(image, timeout=5).headers["content-type"] == "image/png"
    assert sandbox.http.get(video, timeout=5).content[4:8] == b"ftyp"
    assert sandbox.http.get(document, timeout=5).content.startswith(b"%PDF-")
    assert sandbox.http.head(image, timeout=5).status_code == 200

    asset_id = parse_qs(urlsplit(image).query)["asset_id"][0]
    assert sandbox.control("PUT", f"/media/{asset_id}", json={"mode": "expired"}).ok
    expired = sandbox.http.get(image, timeout=5)
    assert expired.status_code == 403
    assert expired.headers["content-type"].startswith("text/plain")

    video_id = parse_qs(urlsplit(video).query)["asset_id"][0]
    sandbox.control("PUT", f"/media/{video_id}", json={"mode": "error_page", "size_bytes": 10})
    page = sandbox.http.get(video, timeout=5)
    assert (page.status_code, page.headers["content-type"][:10]) == (200, "text/plain")

    document_id = parse_qs(urlsplit(document).query)["asset_id"][0]
    sandbox.control("PUT", f"/media/{document_id}", json={"mode": "live", "size_bytes": 5000})
    assert len(sandbox.http.get(document, timeout=5).content) == 5000
    assert sandbox.control("PUT", "/media/1", json={"mode": "live"}).status_code == 404


def test_business_sends_are_in_the_conversation_with_their_media_rehosted(
    sandbox: SandboxClient,
) -> None:
    sandbox.set_config(conversations_rate_limit=False, echo_mode="off")
    customer = sandbox.messaged_customer()
    sent = sandbox.send(
        {
            "recipient": {"id": customer["id"]},
            "message": {
                "attachment": {"type": "image", "payload": {"url": "https://x.test/a.png"}}
            },
        }
    ).json()

    node = sandbox.graph("GET", f"/{sent['message_id']}", params={"fields": "from,attachments"})

    body = node.json()
    assert body["from"]["id"] != customer["id"]
    assert body["attachments"]["data"][0]["image_data"]["url"].startswith(sandbox.url)


def test_an_unsent_message_leaves_the_conversation(sandbox: SandboxClient) -> None:
    sandbox.set_config(conversations_rate_limit=False)
    customer = sandbox.create_customer()
    mid = sandbox.customer_writes(customer["id"], deliver=False)["mid"]
    sandbox.customer_event(customer["id"], "unsend", mid=mid, deliver=False)

    gone = sandbox.graph("GET", f"/{mid}")
    assert (gone.status_code, gone.json()["error"]["code"]) == (400, 100)
    listed = sandbox.graph("GET", "/me/conversations", params={"platform": "instagram"})
    assert listed.json()["data"] == []


def test_files_can_be_put_on_the_cdn_in_bulk(sandbox: SandboxClient) -> None:
    response = sandbox.control("POST", "/media", json={"type": "file", "count": 3})

    assert response.status_code == 201
    urls = response.json()["urls"]
    assert len(set(urls)) == 3
    assert all(sandbox.http.get(url, timeout=5).content.startswith(b"%PDF-") for url in urls)
    assert len(sandbox.control("GET", "/media").json()) == 3


def test_a_conversation_node_expands_its_newest_messages_like_meta(
    sandbox: SandboxClient,
) -> None:
    sandbox.set_config(conversations_rate_limit=False)
    customer = sandbox.create_customer()
    mids = history(sandbox, customer["id"], 30)
    listed = sandbox.graph(
        "GET",
        "/me/conversations",
        params={"platform": "instagram", "fields": "updated_time,messages.limit(2){id,message}"},
    ).json()["data"]
    [conversation] = listed
    assert [m["id"] for m in conversation["messages"]["data"]] == [mids[29], mids[28]]

    node = sandbox.graph(
        "GET",
        f"/{conversation['id']}",
        params={"fields": "participants,messages.limit(25){id,created_time,message}"},
    ).json()

    assert set(node) == {"id", "participants", "messages"}
    first = node["messages"]["data"]
    assert [m.get("message") for m in first[:2]] == ["message 29", "message 28"]
    assert all("message" not in m for m in first[20:])  # older than the 20 newest: ids only
    rest = sandbox.http.get(
        node["messages"]["paging"]["next"], headers={"Authorization": f"Bearer {TOKEN}"}, timeout=5
    ).json()["data"]
    assert [m["id"] for m in first + rest] == list(reversed(mids))
    assert [c["kind"] for c in sandbox.control("GET", "/calls").json()] == ["conversations"] * 3
