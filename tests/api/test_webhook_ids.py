"""Instagram ids in a delivery are digits: an event naming anything else is refused and recorded
on its delivery like any bad event; the rest of the delivery is applied and Meta gets its 200."""

import copy

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models import Message, WebhookDelivery
from tests.helpers import ServiceClient, example, text_message


@pytest.mark.parametrize(
    ("where", "value"),
    [
        ("sender", "12345abc"),
        ("sender", "1234\n"),
        ("recipient", "-17841400123456789"),
        ("sender", "١٢٣"),  # digits, but not 0-9
        ("sender", ""),
    ],
)
def test_an_event_whose_ids_are_not_digits_is_refused_and_recorded(
    api: ServiceClient, db: Session, where: str, value: str
) -> None:
    payload = text_message(mid="m.good", text="kept")
    bad = copy.deepcopy(payload["entry"][0]["messaging"][0])
    bad["message"]["mid"] = "m.bad"
    bad[where]["id"] = value
    payload["entry"][0]["messaging"].append(bad)

    answer = api.deliver(payload)

    assert answer.status_code == 200
    assert db.scalars(select(Message.mid)).all() == ["m.good"]
    delivery = db.scalars(select(WebhookDelivery)).one()
    assert delivery.status == "failed"
    assert "messaging[1]" in (delivery.error or "")


def test_an_entry_whose_account_id_is_not_digits_is_refused(
    api: ServiceClient, db: Session
) -> None:
    payload = example("two_entries_one_delivery")
    payload["entry"][1]["id"] = "17841400987654321 OR 1=1"

    answer = api.deliver(payload)

    assert answer.status_code == 200
    stored = db.scalars(select(Message.text)).all()
    assert stored == ["Is the store open on Sunday?"]
    delivery = db.scalars(select(WebhookDelivery)).one()
    assert delivery.status == "failed"
    assert "entry[1].id" in (delivery.error or "")
