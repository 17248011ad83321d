"""Real answers of /api/v1 are exactly what the response models that document them say.

The hot endpoints answer dicts built by app/schemas/v1/read.py, not validated by FastAPI on
the way out; these tests hold those dicts to the models: every field present, none extra,
each of its type with no coercion (an id is a string, never a number).
"""

import copy
import json
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import pytest
from pydantic import BaseModel, ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models import Message
from app.schemas.v1 import (
    ConversationPage,
    ConversationRead,
    MessagePage,
    MessageRead,
    ReactionRead,
)
from tests.helpers import ServiceClient, add_fault, customer_writes, wait_until

KINDS = {"text", "attachments", "reactions", "sent", "failed", "pending", "read"}

Model = TypeVar("Model", bound=BaseModel)


def exactly(model: type[Model], raw: bytes) -> Model:
    """`raw` (a JSON answer) validated as `model`, strictly and with exactly its fields."""
    validated = model.model_validate_json(raw, strict=True)
    _same_fields(validated, json.loads(raw), where=model.__name__)
    return validated


def _same_fields(value: Any, answer: Any, *, where: str) -> None:
    """The fields of the validated `value` are exactly the keys of `answer`, all the way down
    (a missing key would otherwise take the field's default)."""
    if isinstance(value, BaseModel):
        fields = type(value).model_fields
        assert isinstance(answer, dict), where
        assert set(answer) == set(fields), f"{where}: {sorted(set(answer) ^ set(fields))}"
        for name in fields:
            _same_fields(getattr(value, name), answer[name], where=f"{where}.{name}")
    elif isinstance(value, list):
        assert isinstance(answer, list), where
        for number, (item, raw) in enumerate(zip(value, answer, strict=True)):
            _same_fields(item, raw, where=f"{where}[{number}]")


def send(api: ServiceClient, customer: str, text: str) -> Any:
    return api.post(f"/api/v1/conversations/{customer}/messages", json={"text": text})


def a_full_conversation(api: ServiceClient, meta: ServiceClient, anna: dict) -> dict[str, str]:
    """Anna's conversation with every kind of message a page shows: her text and photo, our
    reply (read by her, with her reaction), our reaction to her photo, and a failed send.
    The mids by role."""
    photo = customer_writes(meta, anna["id"], None, attachments=[{"type": "image"}])["mid"]
    reply = send(api, anna["id"], "Yes, we ship to Germany.")
    assert reply.status_code == 201, reply.text
    ours = reply.json()["mid"]
    reacted = meta.post(
        f"/_sandbox/customers/{anna['id']}/reactions", json={"mid": ours, "reaction": "love"}
    )
    assert reacted.json()["delivery"]["status_code"] == 200
    assert meta.post(f"/_sandbox/customers/{anna['id']}/reads", json={}).status_code == 201
    reaction = api.post(f"/api/v1/conversations/{anna['id']}/reactions", json={"mid": photo})
    assert reaction.status_code == 201, reaction.text
    add_fault(meta, kind="send", error={"message": "Calls exceed rate limit", "code": 613})
    assert send(api, anna["id"], "Refused").status_code == 429
    return {"photo": photo, "ours": ours}


def kinds(message: dict[str, Any]) -> set[str]:
    """What a page's message shows, of the kinds this module checks."""
    shown = {message["status"]} if message["status"] else set()
    if message["text"]:
        shown.add("text")
    if message["attachments"]:
        shown.add("attachments")
    if message["reactions"]:
        shown.add("reactions")
    if message["read"]:
        shown.add("read")
    return shown


def test_a_sends_201_is_a_message_read(api: ServiceClient, anna: dict) -> None:
    response = send(api, anna["id"], "Yes, we ship to Germany.")

    assert response.status_code == 201
    sent = exactly(MessageRead, response.content)
    assert (sent.direction, sent.status, sent.reactions) == ("outbound", "sent", [])


def test_a_reactions_201_is_a_reaction_read(
    api: ServiceClient, meta: ServiceClient, anna: dict
) -> None:
    mid = a_full_conversation(api, meta, anna)["photo"]

    response = api.post(
        f"/api/v1/conversations/{anna['id']}/reactions", json={"mid": mid, "reaction": "wow"}
    )

    assert response.status_code == 201
    assert exactly(ReactionRead, response.content).reaction == "wow"


def test_the_inbox_and_one_conversation_are_conversation_reads(
    api: ServiceClient, meta: ServiceClient, anna: dict
) -> None:
    a_full_conversation(api, meta, anna)
    customer_writes(meta, new_customer_id(meta), "Another customer")

    inbox = api.get("/api/v1/conversations", params={"limit": 1})
    one = api.get(f"/api/v1/conversations/{anna['id']}")

    assert (inbox.status_code, one.status_code) == (200, 200)
    page = exactly(ConversationPage, inbox.content)
    assert len(page.data) == 1
    assert page.next_cursor is not None
    conversation = exactly(ConversationRead, one.content)
    assert conversation.customer.username == anna["username"]
    assert conversation.last_message is not None
    assert conversation.can_reply_until is not None
    assert conversation.customer_read_at is not None


def new_customer_id(meta: ServiceClient) -> str:
    response = meta.post("/_sandbox/customers", json={})
    assert response.status_code == 201
    return str(response.json()["id"])


def test_a_page_of_every_kind_of_message_is_a_message_page(
    api: ServiceClient, meta: ServiceClient, db: Session, anna: dict
) -> None:
    a_full_conversation(api, meta, anna)
    # A send Meta has not answered yet: its row is pending meanwhile.
    add_fault(meta, kind="send", delay_seconds=1.5)
    answered: list[int] = []

    def send_slowly() -> None:
        with ServiceClient(api.base_url) as client:
            answered.append(send(client, anna["id"], "One moment").status_code)

    in_flight = threading.Thread(target=send_slowly)
    in_flight.start()
    try:
        wait_until(lambda: _has_pending(db), what="the pending row")
        response = api.get(f"/api/v1/conversations/{anna['id']}/messages")
    finally:
        in_flight.join()

    assert answered == [201]
    assert response.status_code == 200
    exactly(MessagePage, response.content)
    shown = set().union(*(kinds(message) for message in response.json()["data"]))
    assert shown == KINDS


def _has_pending(db: Session) -> bool:
    db.expire_all()
    found = db.scalars(select(Message.id).where(Message.status == "pending")).first()
    db.commit()
    return found is not None


def test_one_message_is_a_message_read(api: ServiceClient, meta: ServiceClient, anna: dict) -> None:
    mids = a_full_conversation(api, meta, anna)

    ours = api.get(f"/api/v1/messages/{mids['ours']}")
    photo = api.get(f"/api/v1/messages/{mids['photo']}")

    assert (ours.status_code, photo.status_code) == (200, 200)
    assert kinds(ours.json()) == {"text", "sent", "read", "reactions"}
    assert kinds(photo.json()) == {"attachments", "reactions"}
    assert exactly(MessageRead, ours.content).mid == mids["ours"]
    assert exactly(MessageRead, photo.content).mid == mids["photo"]


# --- the check itself ----------------------------------------------------------------------------

Doctor = Callable[[dict[str, Any]], object]


def documented(model: type[BaseModel]) -> dict[str, Any]:
    """The example the model shows in the API documentation (a copy)."""
    return copy.deepcopy(model.model_config["json_schema_extra"]["examples"][0])  # type: ignore[index]


@pytest.mark.parametrize(
    "model", [ConversationPage, ConversationRead, MessagePage, MessageRead, ReactionRead]
)
def test_the_documented_examples_pass_the_check(model: type[BaseModel]) -> None:
    exactly(model, json.dumps(documented(model)).encode())


@pytest.mark.parametrize(
    ("model", "doctor"),
    [
        (MessageRead, lambda m: m.pop("read")),
        (MessageRead, lambda m: m["reactions"][0].pop("emoji")),
        (MessageRead, lambda m: m.update(extra="no such field")),
        (MessageRead, lambda m: m.update(id=42)),
        (MessageRead, lambda m: m.update(sender_id=17841400123456789)),
        (MessageRead, lambda m: m.update(edit_count="0")),
        (MessageRead, lambda m: m.update(is_deleted=0)),
        (MessageRead, lambda m: m.update(sent_at=1745923824123)),
        (MessageRead, lambda m: m.update(status="delivered")),
        (MessageRead, lambda m: m["reactions"][0].update(reacted_at=None)),
        # A field with a default (None) must be in the answer all the same.
        (ConversationRead, lambda c: c["customer"].pop("username")),
        (ConversationRead, lambda c: c.update(unread_count=1.5)),
        (ConversationRead, lambda c: c.update(can_reply_until="tomorrow")),
        (MessagePage, lambda p: p["data"][0].pop("reactions")),
        (MessagePage, lambda p: p.update(has_older="false")),
    ],
    ids=[
        "missing",
        "missing-nested",
        "extra",
        "id-number",
        "igsid-number",
        "count-string",
        "bool-number",
        "time-number",
        "unknown-status",
        "nested-null",
        "missing-with-default",
        "count-float",
        "time-text",
        "missing-in-page",
        "bool-string",
    ],
)
def test_the_check_refuses_a_missing_extra_or_mistyped_field(
    model: type[BaseModel], doctor: Doctor
) -> None:
    answer = documented(model)
    doctor(answer)

    with pytest.raises((ValidationError, AssertionError)):
        exactly(model, json.dumps(answer).encode())
