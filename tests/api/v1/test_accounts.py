"""Many business accounts in one deployment: added by token, routed by entry.id, each served
with its own token, isolated from the others' failures, removed; on both databases, against
the sandbox playing several accounts."""

from concurrent.futures import ThreadPoolExecutor
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models import Account, Conversation, Message, PendingEntry
from app.sandbox import webhooks
from app.services.subscription import WEBHOOK_FIELDS
from tests.conftest import StartService
from tests.helpers import (
    ACCOUNT_ID,
    USER_TOKEN,
    ServiceClient,
    add_fault,
    customer_writes,
    graph_calls,
    new_customer,
    wait_for_profiles,
    wait_until,
)
from tests.stack import SharedService

SECOND_ID = "17841400555000111"


def second_account(meta: ServiceClient, account_id: str = SECOND_ID) -> dict[str, Any]:
    """Another business account the sandbox plays, with a token of its own."""
    response = meta.post("/_sandbox/accounts", json={"id": account_id, "username": "second_shop"})
    assert response.status_code == 201, response.text
    return response.json()


def add(api: ServiceClient, token: str) -> Any:
    return api.post("/api/v1/accounts", json={"access_token": token})


def rows(db: Session, model: type) -> list[Any]:
    db.expire_all()
    found = list(db.scalars(select(model)))
    db.commit()
    return found


def conversations_of(db: Session, account_id: str) -> set[str]:
    return {row.customer_id for row in rows(db, Conversation) if row.account_id == account_id}


def test_an_account_is_added_by_its_token_and_subscribed(
    api: ServiceClient, meta: ServiceClient, db: Session
) -> None:
    second = second_account(meta)

    response = add(api, second["access_token"])

    assert response.status_code == 201, response.text
    body = response.json()
    assert (body["id"], body["username"], body["status"]) == (SECOND_ID, "second_shop", "active")
    assert body["token_state"] == "valid"
    assert body["subscribed_fields"] == list(WEBHOOK_FIELDS)
    assert body["conversation_count"] == 0
    assert second["access_token"] not in response.text
    stored = next(row for row in rows(db, Account) if row.id == SECOND_ID)
    assert stored.access_token
    assert second["access_token"] not in stored.access_token  # sealed
    accounts_seen = {call["account_id"] for call in graph_calls(meta) if call["kind"] != "other"}
    assert SECOND_ID in accounts_seen
    subscribed = meta.get("/_sandbox/accounts").json()
    assert next(a for a in subscribed if a["id"] == SECOND_ID)["subscribed_fields"] == list(
        WEBHOOK_FIELDS
    )
    listed = api.get("/api/v1/accounts").json()["data"]
    assert [account["id"] for account in listed] == [ACCOUNT_ID, SECOND_ID]
    assert api.get(f"/api/v1/accounts/{SECOND_ID}").json()["id"] == SECOND_ID


def test_a_new_token_for_an_existing_account_replaces_it_without_a_second_row(
    api: ServiceClient, meta: ServiceClient, db: Session, service: SharedService
) -> None:
    second = second_account(meta)
    assert add(api, second["access_token"]).status_code == 201
    meta.put("/_sandbox/tokens", json={"token": second["access_token"], "age_seconds": 2 * 86400})
    fresh = meta.get(
        "/refresh_access_token",
        params={"grant_type": "ig_refresh_token", "access_token": second["access_token"]},
    ).json()["access_token"]

    response = add(api, fresh)

    assert response.status_code == 200, response.text
    assert [row.id for row in rows(db, Account)].count(SECOND_ID) == 1
    cipher = service.app.state.tokens.cipher
    stored = next(row for row in rows(db, Account) if row.id == SECOND_ID)
    assert cipher.open(stored.access_token) == fresh


def test_a_token_meta_refuses_is_422_and_stores_nothing(api: ServiceClient, db: Session) -> None:
    refused = "IGAAnot-a-token-meta-issued-0123"

    response = add(api, refused)

    assert response.status_code == 422
    assert response.json()["code"] == "instagram_token_invalid"
    assert refused not in response.text
    assert [row.id for row in rows(db, Account)] == [ACCOUNT_ID]


def test_an_unknown_account_is_404(api: ServiceClient) -> None:
    for response in (
        api.get("/api/v1/accounts/17841400000000001"),
        api.delete("/api/v1/accounts/17841400000000001"),
    ):
        assert (response.status_code, response.json()["code"]) == (404, "account_not_found")


def test_entries_of_an_unknown_account_are_kept_and_applied_when_it_is_added(
    api: ServiceClient, meta: ServiceClient, db: Session
) -> None:
    second = second_account(meta)
    customer = new_customer(meta, account_id=SECOND_ID, username="bella")

    customer_writes(meta, customer["id"], "before the account was added")

    assert conversations_of(db, SECOND_ID) == set()
    assert [row.account_id for row in rows(db, PendingEntry)] == [SECOND_ID]
    assert add(api, second["access_token"]).status_code == 201
    assert conversations_of(db, SECOND_ID) == {customer["id"]}
    assert [m.text for m in rows(db, Message)] == ["before the account was added"]
    assert rows(db, PendingEntry) == []
    # Applied through the normal intake: the same delivery again changes nothing.
    assert add(api, second["access_token"]).status_code == 200
    assert len(rows(db, Message)) == 1


def test_interleaved_deliveries_of_two_accounts_each_served_with_its_own_token(
    api: ServiceClient, meta: ServiceClient, db: Session
) -> None:
    second = second_account(meta)
    assert add(api, second["access_token"]).status_code == 201
    anna = new_customer(meta, username="anna")
    bella = new_customer(meta, account_id=SECOND_ID, username="bella")
    customer_writes(meta, anna["id"], "anna 1")
    customer_writes(meta, bella["id"], "bella 1")
    both = webhooks.batch(
        entries=[
            webhooks.account_entry(
                account_id=account_id,
                items=[
                    webhooks.message_item(
                        customer_id=customer_id,
                        account_id=account_id,
                        mid=f"m-both-{customer_id}",
                        timestamp_ms=1_900_000_000_000,
                        text=f"both {customer_id}",
                    )
                ],
                time_ms=1_900_000_000_000,
            )
            for account_id, customer_id in ((ACCOUNT_ID, anna["id"]), (SECOND_ID, bella["id"]))
        ]
    )
    assert api.deliver(both).status_code == 200
    wait_for_profiles(db, anna["id"], bella["id"])

    sent = {
        name: api.post(f"/api/v1/conversations/{customer['id']}/messages", json={"text": name})
        for name, customer in (("to anna", anna), ("to bella", bella))
    }

    assert {name: answer.status_code for name, answer in sent.items()} == {
        "to anna": 201,
        "to bella": 201,
    }
    assert sent["to bella"].json()["account_id"] == SECOND_ID
    assert conversations_of(db, ACCOUNT_ID) == {anna["id"]}
    assert conversations_of(db, SECOND_ID) == {bella["id"]}
    calls = graph_calls(meta)
    by_path = {
        (call["kind"], call["path"].rsplit("/", 1)[-1]): call["account_id"] for call in calls
    }
    assert by_path[("profile", anna["id"])] == ACCOUNT_ID
    assert by_path[("profile", bella["id"])] == SECOND_ID
    sends = [call["account_id"] for call in calls if call["kind"] == "send"]
    assert sorted(sends) == sorted([ACCOUNT_ID, SECOND_ID])
    inbox = api.get("/api/v1/conversations", params={"account_id": SECOND_ID}).json()["data"]
    assert [row["customer"]["id"] for row in inbox] == [bella["id"]]


def test_a_190_on_one_account_leaves_the_other_working(
    api: ServiceClient, meta: ServiceClient, db: Session
) -> None:
    second = second_account(meta)
    assert add(api, second["access_token"]).status_code == 201
    anna = new_customer(meta, username="anna")
    bella = new_customer(meta, account_id=SECOND_ID, username="bella")
    customer_writes(meta, anna["id"])
    customer_writes(meta, bella["id"])
    meta.put("/_sandbox/tokens", json={"token": USER_TOKEN, "revoked": True})

    refused = api.post(f"/api/v1/conversations/{anna['id']}/messages", json={"text": "a"})
    served = api.post(f"/api/v1/conversations/{bella['id']}/messages", json={"text": "b"})

    assert (refused.status_code, refused.json()["code"]) == (502, "instagram_token_invalid")
    assert served.status_code == 201
    statuses = {row.id: row.status for row in rows(db, Account)}
    assert statuses == {ACCOUNT_ID: "needs_reauth", SECOND_ID: "active"}
    listed = {a["id"]: a for a in api.get("/api/v1/accounts").json()["data"]}
    assert listed[ACCOUNT_ID]["token_state"] == "invalid"
    assert listed[SECOND_ID]["token_state"] == "valid"
    ready = {a["id"]: a for a in api.get("/ready").json()["accounts"]}
    assert ready[ACCOUNT_ID]["token"]["state"] == "invalid"
    assert ready[SECOND_ID]["token"]["state"] == "valid"


def test_a_removed_account_is_no_longer_used_and_its_conversations_stay_readable(
    api: ServiceClient, meta: ServiceClient, db: Session
) -> None:
    second = second_account(meta)
    assert add(api, second["access_token"]).status_code == 201
    bella = new_customer(meta, account_id=SECOND_ID, username="bella")
    customer_writes(meta, bella["id"], "hello from bella")

    assert api.delete(f"/api/v1/accounts/{SECOND_ID}").status_code == 204

    sent = api.post(f"/api/v1/conversations/{bella['id']}/messages", json={"text": "no"})
    assert (sent.status_code, sent.json()["code"]) == (409, "account_removed")
    history = api.get(f"/api/v1/conversations/{bella['id']}/messages").json()["data"]
    assert [message["text"] for message in history] == ["hello from bella"]
    removed = api.get(f"/api/v1/accounts/{SECOND_ID}").json()
    assert (removed["status"], removed["token_state"]) == ("removed", "invalid")
    stored = next(row for row in rows(db, Account) if row.id == SECOND_ID)
    assert stored.access_token is None
    assert not [call for call in graph_calls(meta, "send") if call["account_id"] == SECOND_ID]
    customer_writes(meta, bella["id"], "after removal")  # kept, not applied
    assert [row.account_id for row in rows(db, PendingEntry)] == [SECOND_ID]


def test_a_hanging_account_holds_its_own_slots_not_the_others(
    start_service: StartService, meta: ServiceClient
) -> None:
    # Two shared slots, one per account: without slots of its own, the first account's two
    # hanging sends would hold both, and the second account could send nothing.
    server = start_service(
        instagram_max_concurrency=2,
        instagram_account_max_concurrency=1,
        instagram_queue_timeout=0.2,
        profile_worker_enabled=False,
    )
    with ServiceClient(server.url) as api, ThreadPoolExecutor(1) as pool:
        second = second_account(meta)
        assert add(api, second["access_token"]).status_code == 201
        anna = new_customer(meta, username="anna")
        bella = new_customer(meta, account_id=SECOND_ID, username="bella")
        customer_writes(meta, anna["id"])
        customer_writes(meta, bella["id"])
        add_fault(meta, kind="send", account_id=ACCOUNT_ID, delay_seconds=60)  # until reset
        path = "/api/v1/conversations/{}/messages"
        held = pool.submit(api.post, path.format(anna["id"]), json={"text": "held"})
        wait_until(lambda: len(graph_calls(meta, "send")) == 1, what="the held send")

        queued = api.post(path.format(anna["id"]), json={"text": "queued"})
        served = api.post(path.format(bella["id"]), json={"text": "served"})

        assert (queued.status_code, queued.json()["code"]) == (503, "instagram_busy")
        assert served.status_code == 201
        meta.delete("/_sandbox/faults")  # lets the held call go
        assert held.result(timeout=10).status_code == 201
