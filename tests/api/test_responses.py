"""The JSON writer of the read endpoints writes what the standard library would."""

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest

from app.api.responses import dumps, json_response


def standard(content: object) -> bytes:
    def encode(value: object) -> str:
        assert isinstance(value, datetime)
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")

    return json.dumps(content, default=encode, ensure_ascii=False, separators=(",", ":")).encode()


@pytest.mark.parametrize(
    "content",
    [
        {"sent_at": datetime(2026, 11, 29, 14, 0, tzinfo=UTC)},
        {"sent_at": datetime(2026, 11, 29, 14, 0, 0, 123000, tzinfo=UTC)},
        {"sent_at": datetime(2026, 11, 29, 14, 0, 0, 1, tzinfo=UTC)},
        {"text": 'Привет 👋 \u2764\ufe0f "quoted" \\ \n\t\u0000', "n": [1, -2, 3.5, None, True]},
        {"data": [{"attachments": [{"type": "image", "payload": {"url": "https://x/y?a=1&b"}}]}]},
        [],
        {},
    ],
)
def test_the_same_bytes_as_the_standard_library(content: object) -> None:
    assert dumps(content) == standard(content)


def test_what_orjson_refuses_is_written_by_the_standard_library() -> None:
    huge = {"payload": {"id": 10**30}, "at": datetime(2026, 1, 1, tzinfo=UTC)}
    other_zone = datetime(2026, 1, 1, 3, tzinfo=timezone(timedelta(hours=3)))

    assert dumps(huge) == standard(huge)
    # The database hands out UTC only (UTCDateTime); another zone keeps its instant.
    written = json.loads(dumps({"at": other_zone}))["at"]
    assert datetime.fromisoformat(written) == other_zone


def test_json_response_answers_json() -> None:
    response = json_response({"ok": True}, status_code=201)

    assert (response.status_code, response.body) == (201, b'{"ok":true}')
    assert response.headers["content-type"] == "application/json"
