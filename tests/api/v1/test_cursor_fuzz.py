"""Tampered cursors are 422 `invalid_cursor`, never 500: huge dates, ids past 64 bits, odd
offsets, garbage (hypothesis, against the running service on both databases)."""

import base64

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.helpers import ServiceClient, customer_writes, new_customer


def encoded(raw: str) -> str:
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


moments = st.one_of(
    st.datetimes().map(lambda moment: moment.isoformat()),
    st.sampled_from(
        [
            "9999-12-31T23:59:59+00:00",
            "9999-12-31T23:59:59-14:00",
            "0001-01-01T00:00:00+14:00",
            "2025-04-29T10:50:12+23:59:59.999999",
            "2025-04-29T10:50:12-23:59",
            "2025-04-29T10:50:12",
            "2025-04-29",
            "",
        ]
    ),
    st.text(max_size=40),
)
row_ids = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
    st.sampled_from(["9223372036854775807", "9223372036854775808", "1_000", " 7", "7 ", "0x10"]),
    st.text(max_size=20),
)
cursors = st.one_of(
    st.builds(lambda at, row_id: encoded(f"{at}|{row_id}"), moments, row_ids),
    st.text(max_size=300),
    st.binary(max_size=120).map(lambda raw: base64.urlsafe_b64encode(raw).decode()),
)


@pytest.fixture
def customer_id(api: ServiceClient, meta: ServiceClient) -> str:
    """A conversation with a message: the pages have something to page through."""
    customer = new_customer(meta)
    customer_writes(meta, customer["id"])
    return str(customer["id"])


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(cursor=cursors)
def test_a_tampered_cursor_is_422_never_500(
    api: ServiceClient, customer_id: str, cursor: str
) -> None:
    answers = [
        api.get("/api/v1/conversations", params={"cursor": cursor}),
        api.get(f"/api/v1/conversations/{customer_id}/messages", params={"before": cursor}),
        api.get(f"/api/v1/conversations/{customer_id}/messages", params={"after": cursor}),
    ]

    for answer in answers:
        assert answer.status_code in (200, 422), (cursor, answer.status_code, answer.text)
        if answer.status_code == 422:
            assert answer.json()["code"] in ("invalid_cursor", "validation_error"), answer.text
