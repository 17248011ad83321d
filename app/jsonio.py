"""JSON in and out, fast: orjson, with the standard library for what orjson refuses.

Used for the answers of the hot endpoints (app/api/responses.py) and the outbox's payload
snapshots, so datetimes are written alike everywhere: ISO 8601, UTC as "…Z".
"""

import json
from datetime import UTC, datetime
from typing import Any

import orjson

# Datetimes from the database are aware UTC (see UTCDateTime): written "…Z", as pydantic
# writes them (an aware datetime in another zone would keep its offset: the same instant).
_ORJSON_OPTIONS = orjson.OPT_UTC_Z


def _encode(value: object) -> str:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    raise TypeError(f"{type(value).__name__} is not JSON")


def dumps(content: Any) -> bytes:
    """`content` as JSON bytes. A value orjson refuses (an integer over 64 bits kept verbatim
    from a webhook payload, a key that is not a string) falls back to the standard library."""
    try:
        return orjson.dumps(content, option=_ORJSON_OPTIONS)
    except orjson.JSONEncodeError:
        return json.dumps(
            content, default=_encode, ensure_ascii=False, separators=(",", ":")
        ).encode()


def plain(content: Any) -> Any:
    """`content` as JSON values (datetimes as "…Z" strings, tuples as lists): through JSON and
    back, in C where orjson can (integers over 64 bits go through the standard library,
    which keeps them exact)."""
    try:
        return orjson.loads(orjson.dumps(content, option=_ORJSON_OPTIONS))
    except orjson.JSONEncodeError:
        return json.loads(json.dumps(content, default=_encode))
