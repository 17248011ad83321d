"""Post shares: the legacy `share` attachment and its replacement `ig_post` (Meta sends only
`ig_post` since 2026-04-27) are both kept verbatim and shown as received."""

import copy

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models import Message
from tests.helpers import ServiceClient, example


def test_an_ig_post_alone_is_kept_and_shown_verbatim(api: ServiceClient, db: Session) -> None:
    payload = copy.deepcopy(example("share_post"))
    message = payload["entry"][0]["messaging"][0]["message"]
    message["attachments"] = [a for a in message["attachments"] if a["type"] == "ig_post"]
    customer = payload["entry"][0]["messaging"][0]["sender"]["id"]

    assert api.deliver(payload).status_code == 200

    stored = db.scalars(select(Message)).one()
    assert stored.attachments == message["attachments"]
    page = api.get(f"/api/v1/conversations/{customer}/messages").json()
    [shown] = page["data"][0]["attachments"]
    assert (shown["type"], shown["payload"]) == ("ig_post", message["attachments"][0]["payload"])
    history = api.get("/messages", params={"user_id": customer}).json()
    assert history[0]["text"] == "[ig_post]"


def test_share_and_ig_post_together_are_both_shown(api: ServiceClient) -> None:
    payload = example("share_post")
    message = payload["entry"][0]["messaging"][0]["message"]
    customer = payload["entry"][0]["messaging"][0]["sender"]["id"]

    assert api.deliver(payload).status_code == 200

    shown = api.get(f"/api/v1/conversations/{customer}/messages").json()["data"][0]
    assert [(a["type"], a["payload"]) for a in shown["attachments"]] == [
        (a["type"], a["payload"]) for a in message["attachments"]
    ]
