"""Malformed and hostile webhook bodies, correctly signed, never get a 5xx or hang, and get
what the README promises: any JSON body 200 and kept as a delivery (applied, or failed for
`fab replay`), what is not JSON 400 `malformed_json`, a body over the limit 413; the service
still takes a normal delivery afterwards."""

import copy
import json
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.models import Message, WebhookDelivery
from tests.conftest import StartShared
from tests.helpers import (
    ACCOUNT_ID,
    CUSTOMER_ID,
    ServiceClient,
    count_rows,
    encode,
    example,
    signed_headers,
    text_message,
)
from tests.stack import SharedService

MAX_BODY_BYTES = 4 * 1024 * 1024  # the default
# A request that takes longer than this is a hang.
TIMEOUT_SECONDS = 20
MANY_EVENTS = 10_000
MANY_EVENTS_TIMEOUT_SECONDS = 120

WRONG_VALUES: list[Any] = [
    None,
    0,
    -1,
    2**70,
    1.5,
    "",
    "x" * 5000,
    "\u0000",
    True,
    [],
    {},
    [None],
    {"": None},
]


@pytest.fixture
def service(start_shared: StartShared) -> SharedService:
    return start_shared(log_level="WARNING")


@pytest.fixture
def client(service: SharedService) -> Iterator[ServiceClient]:
    with ServiceClient(service.url) as client:
        yield client


def post_signed(
    client: ServiceClient, body: bytes, *, expect: int = 200, timeout: float = TIMEOUT_SECONDS
) -> None:
    """POST a correctly signed body; it must be answered `expect` (never a 5xx)."""
    response = client.post("/webhook", data=body, headers=signed_headers(body), timeout=timeout)
    assert response.status_code == expect, (response.status_code, body[:300], response.text[:500])
    if expect == 400:
        assert response.json()["code"] == "malformed_json"
    if expect == 413:
        assert response.json()["code"] == "payload_too_large"


def newest_delivery(db: Session) -> WebhookDelivery | None:
    db.expire_all()
    newest = db.scalars(select(WebhookDelivery).order_by(WebhookDelivery.id.desc())).first()
    db.commit()
    return newest


def assert_kept(db: Session, body: bytes) -> None:
    """The delivery was stored as received (applied, or failed and kept for replay)."""
    delivery = newest_delivery(db)
    assert delivery is not None
    assert delivery.body == body
    assert delivery.status in ("applied", "failed")
    assert delivery.status == "applied" or delivery.error


def assert_still_serving(client: ServiceClient, db: Session, mid: str) -> None:
    """After the abuse a normal delivery is stored."""
    assert client.get("/health", timeout=TIMEOUT_SECONDS).status_code == 200
    post_signed(client, encode(text_message(mid=mid)))
    db.expire_all()
    assert db.scalar(select(func.count()).select_from(Message).where(Message.mid == mid)) == 1


def nested(depth: int, leaf: Any = 1) -> Any:
    value = leaf
    for _ in range(depth):
        value = {"a": [value]}
    return value


def paths(node: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every position in a JSON document, the root included."""
    yield prefix
    if isinstance(node, dict):
        for key, value in node.items():
            yield from paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from paths(value, (*prefix, index))


def replaced(document: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    changed = copy.deepcopy(document)
    parent = changed
    for step in path[:-1]:
        parent = parent[step]
    parent[path[-1]] = value
    return changed


@pytest.mark.slow
def test_wrong_types_anywhere_are_kept_and_answered_200(client: ServiceClient, db: Session) -> None:
    base = text_message(mid="placeholder")
    posted: set[bytes] = set()
    for number, (path, value) in enumerate(
        (path, value) for path in list(paths(base)) for value in WRONG_VALUES
    ):
        document = copy.deepcopy(base)
        document["entry"][0]["messaging"][0]["message"]["mid"] = f"wrong-type-{number}"
        body = json.dumps(replaced(document, path, value)).encode()
        post_signed(client, body)
        posted.add(body)
    assert len(posted) >= 200
    # Every one kept; the same body twice (a value replacing the mid itself) is stored once.
    assert count_rows(db, WebhookDelivery) == len(posted)
    assert_still_serving(client, db, "after-wrong-types")


NOT_JSON = 400
JSON = 200


@pytest.mark.parametrize(
    ("body", "expect"),
    [
        pytest.param(b"", NOT_JSON, id="empty"),
        pytest.param(b"null", JSON, id="null"),
        pytest.param(b"[]", JSON, id="array"),
        pytest.param(b'"instagram"', JSON, id="string"),
        pytest.param(b"0", JSON, id="number"),
        pytest.param(b"{}", JSON, id="empty-object"),
        pytest.param(b'{"object": null, "entry": null}', JSON, id="null-fields"),
        pytest.param(b'{"object": "instagram", "entry": [null, {}, []]}', JSON, id="null-entries"),
        pytest.param(
            b'{"object":"instagram","entry":[{"id":null,"time":null,"messaging":[null,'
            b'{"sender":null,"recipient":null,"timestamp":null,"message":null}]}]}',
            JSON,
            id="nulls-inside",
        ),
        # NaN and Infinity are not JSON (and PostgreSQL could not store them).
        pytest.param(b'{"object": "instagram", "entry": [{"time": NaN}]}', NOT_JSON, id="nan"),
        pytest.param(
            b'{"object": "instagram", "entry": [{"time": Infinity}]}', NOT_JSON, id="infinity"
        ),
        pytest.param(
            b'{"object": "instagram", "entry": [{"time": -Infinity}]}', NOT_JSON, id="-infinity"
        ),
        pytest.param(
            b'{"object": "instagram", "entry": [{"time": 1e400}]}', JSON, id="float-overflow"
        ),
        pytest.param(
            b'{"object": "instagram", "entry": [{"id": "\xff\xfe"}]}', NOT_JSON, id="bad-utf8"
        ),
        # RFC 8259 lets a parser ignore a byte order mark: JSON after it is JSON.
        pytest.param(b"\xef\xbb\xbf{}", JSON, id="utf8-bom"),
        pytest.param(b'{"object": "instagram"', NOT_JSON, id="truncated"),
        # Nesting is bounded: deeper than Python can parse is refused as malformed.
        pytest.param(b"[" * 100_000 + b"]" * 100_000, NOT_JSON, id="deep-arrays"),
        pytest.param(b'{"a":' * 50_000 + b"1" + b"}" * 50_000, NOT_JSON, id="deep-objects"),
        pytest.param(
            b'{"object":"instagram","entry":[],"entry":[{"id":"1","messaging":[]}]}',
            JSON,
            id="duplicate-keys",
        ),
        pytest.param(b'{"text": "\\ud800"}', JSON, id="lone-surrogate-escape"),
    ],
)
def test_malformed_bodies_get_200_when_json_else_400(
    client: ServiceClient, db: Session, body: bytes, expect: int
) -> None:
    post_signed(client, body, expect=expect)

    if expect == JSON:
        assert_kept(db, body)
    else:
        assert count_rows(db, WebhookDelivery) == 0
    assert_still_serving(client, db, "after-malformed")


def _message_with(mid: str, **message: Any) -> bytes:
    document = text_message(mid=mid)
    document["entry"][0]["messaging"][0]["message"].update(message)
    return json.dumps(document).encode()


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(_message_with("nul-text", text="a\u0000b"), id="nul-in-text"),
        pytest.param(_message_with("surrogate-text", text="\ud800"), id="lone-surrogate-text"),
        pytest.param(_message_with("\u0000", text="nul mid"), id="nul-mid"),
        pytest.param(_message_with("x" * 100_000, text="long mid"), id="long-mid"),
        pytest.param(_message_with("nested-text", text=nested(200)), id="deeply-nested-text"),
        pytest.param(
            _message_with("nested-attachments", attachments=[nested(200)]),
            id="deeply-nested-attachments",
        ),
        pytest.param(
            json.dumps(
                {
                    **text_message(mid="ids"),
                    "entry": [
                        {
                            "id": "9" * 5000,
                            "time": -1,
                            "messaging": [
                                {
                                    "sender": {"id": "-1"},
                                    "recipient": {"id": "1" * 70},
                                    "timestamp": 2**63,
                                    "message": {"mid": "big-ids", "text": "hi"},
                                }
                            ],
                        }
                    ],
                }
            ).encode(),
            id="absurd-ids-and-times",
        ),
    ],
)
def test_hostile_values_in_a_message_are_kept_and_answered_200(
    client: ServiceClient, db: Session, body: bytes
) -> None:
    post_signed(client, body)
    assert_kept(db, body)
    assert_still_serving(client, db, "after-hostile-values")


def test_duplicate_keys_inside_a_message(client: ServiceClient, db: Session) -> None:
    raw = encode(text_message(mid="first-mid")).replace(
        b'"mid": "first-mid"', b'"mid": "first-mid", "mid": "second-mid"'
    )
    assert b"second-mid" in raw
    post_signed(client, raw)
    assert_kept(db, raw)
    assert_still_serving(client, db, "after-duplicate-keys")


def test_a_huge_string_just_under_the_body_limit(client: ServiceClient, db: Session) -> None:
    envelope = encode(text_message(mid="huge-text", text=""))
    text = "h" * (MAX_BODY_BYTES - len(envelope) - 100)
    body = encode(text_message(mid="huge-text", text=text))
    assert MAX_BODY_BYTES - 200 < len(body) <= MAX_BODY_BYTES
    post_signed(client, body, timeout=60)
    assert_kept(db, body)
    db.expire_all()
    stored = db.scalars(select(Message).where(Message.mid == "huge-text")).one()
    assert stored.text == text
    assert_still_serving(client, db, "after-huge-text")


def test_a_body_just_over_the_limit_is_413(client: ServiceClient, db: Session) -> None:
    body = encode(text_message(mid="too-big", text="t" * MAX_BODY_BYTES))
    post_signed(client, body, expect=413)
    assert count_rows(db, WebhookDelivery) == 0
    assert_still_serving(client, db, "after-too-big")


@pytest.mark.slow
def test_ten_thousand_events_in_one_delivery_are_all_stored(
    client: ServiceClient, db: Session
) -> None:
    item = example("text")["entry"][0]["messaging"][0]
    items = []
    for number in range(MANY_EVENTS):
        event = copy.deepcopy(item)
        event["timestamp"] = 1745923812000 + number
        event["message"] = {"mid": f"many-{number}", "text": f"message {number}"}
        items.append(event)
    body = encode(
        {"object": "instagram", "entry": [{"time": 1, "id": ACCOUNT_ID, "messaging": items}]}
    )
    post_signed(client, body, timeout=MANY_EVENTS_TIMEOUT_SECONDS)
    stored = db.scalar(select(func.count()).select_from(Message).where(Message.mid.like("many-%")))
    assert stored == MANY_EVENTS
    assert newest_delivery(db).status == "applied"
    assert_still_serving(client, db, "after-many-events")


def test_ten_thousand_entries_of_nothing(client: ServiceClient, db: Session) -> None:
    entry = {"time": 1, "id": ACCOUNT_ID, "messaging": [{"sender": {"id": CUSTOMER_ID}}]}
    body = encode({"object": "instagram", "entry": [entry] * MANY_EVENTS})
    post_signed(client, body, timeout=MANY_EVENTS_TIMEOUT_SECONDS)
    assert_kept(db, body)
    assert count_rows(db, Message) == 0
    assert_still_serving(client, db, "after-empty-entries")
