"""The messaging window: 24 hours after the customer's last message, 7 days with HUMAN_AGENT."""

from datetime import UTC, datetime, timedelta

import pytest

from app.errors import ConflictError
from app.services import window

WROTE_AT = datetime(2025, 4, 29, 10, 50, 12, tzinfo=UTC)


def test_the_deadlines_count_from_the_customers_last_message() -> None:
    assert window.can_reply_until(WROTE_AT) == WROTE_AT + timedelta(hours=24)
    assert window.human_agent_until(WROTE_AT) == WROTE_AT + timedelta(days=7)
    assert window.can_reply_until(None) is None
    assert window.human_agent_until(None) is None


@pytest.mark.parametrize(
    ("tag", "after", "open_"),
    [
        (None, timedelta(hours=24), True),
        (None, timedelta(hours=24, milliseconds=1), False),
        ("HUMAN_AGENT", timedelta(hours=25), True),
        ("HUMAN_AGENT", timedelta(days=7), True),
        ("HUMAN_AGENT", timedelta(days=7, milliseconds=1), False),
    ],
)
def test_the_window_closes_at_its_deadline(tag: str | None, after: timedelta, open_: bool) -> None:
    assert window.is_open(last_inbound_at=WROTE_AT, tag=tag, now=WROTE_AT + after) is open_


def test_a_closed_window_is_a_409_saying_when_the_customer_wrote() -> None:
    with pytest.raises(ConflictError) as refused:
        window.check(WROTE_AT, tag=None, now=WROTE_AT + timedelta(hours=25))

    assert (refused.value.status_code, refused.value.code) == (409, "outside_window")
    # Word for word what the service has always said ("1 days" included).
    assert refused.value.message == (
        "The customer last wrote at 2025-04-29T10:50:12+00:00; Instagram allows replies for "
        "1 days after that (7 days for a human agent with the HUMAN_AGENT tag)."
    )


def test_a_human_agent_past_7_days_is_told_the_7_day_limit() -> None:
    with pytest.raises(ConflictError) as refused:
        window.check(WROTE_AT, tag="HUMAN_AGENT", now=WROTE_AT + timedelta(days=8))

    assert refused.value.message == (
        "The customer last wrote at 2025-04-29T10:50:12+00:00; Instagram allows replies for "
        "7 days after that."
    )


def test_without_a_stored_customer_message_the_check_leaves_it_to_meta() -> None:
    window.check(None, tag=None, now=WROTE_AT)
