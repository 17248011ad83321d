"""JSON values as the API and the outbox write them: datetimes "…Z", integers kept exact."""

from datetime import UTC, datetime

from app.jsonio import dumps, plain

AT = datetime(2026, 11, 30, 16, 0, 0, 5, tzinfo=UTC)


def test_plain_writes_datetimes_as_utc_z_and_tuples_as_lists() -> None:
    value = {"at": AT, "pair": (1, 2), "nested": [{"at": AT.replace(microsecond=0)}]}
    assert plain(value) == {
        "at": "2026-11-30T16:00:00.000005Z",
        "pair": [1, 2],
        "nested": [{"at": "2026-11-30T16:00:00Z"}],
    }


def test_integers_over_64_bits_stay_exact() -> None:
    big = 2**70 + 1  # Meta's payloads are kept verbatim; orjson alone would refuse or round
    assert plain({"id": big, "at": AT}) == {"id": big, "at": "2026-11-30T16:00:00.000005Z"}
    assert dumps({"id": big}) == b'{"id":1180591620717411303425}'
