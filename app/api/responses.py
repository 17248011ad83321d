"""JSON answers for the hot read endpoints, serialized once.

FastAPI serializes a return value by validating it against the response model first; for a
page of 50 messages that costs more than the database. These endpoints build plain dicts
(shaped like their response model, which still documents them) and answer them directly,
through orjson (several times faster than the standard library for a page of messages).
"""

import json
from datetime import UTC, datetime
from typing import Any

import orjson
from starlette.responses import Response

# Datetimes from the database are aware UTC (see UTCDateTime): written "…Z", as pydantic
# writes them (an aware datetime in another zone would keep its offset: the same instant).
_ORJSON_OPTIONS = orjson.OPT_UTC_Z


def _encode(value: object) -> str:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    raise TypeError(f"{type(value).__name__} is not JSON")


def dumps(content: Any) -> bytes:
    """`content` as JSON bytes. A value orjson refuses (an integer over 64 bits kept verbatim
    from a webhook payload) falls back to the standard library."""
    try:
        return orjson.dumps(content, option=_ORJSON_OPTIONS)
    except orjson.JSONEncodeError:
        return json.dumps(
            content, default=_encode, ensure_ascii=False, separators=(",", ":")
        ).encode()


def json_response(content: Any, *, status_code: int = 200) -> Response:
    return Response(dumps(content), status_code=status_code, media_type="application/json")
