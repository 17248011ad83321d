"""JSON answers for the hot read endpoints, serialized once.

FastAPI serializes a return value by validating it against the response model first; for a
page of 50 messages that costs more than the database. These endpoints build plain dicts
(shaped like their response model, which still documents them) and answer them directly,
through orjson (several times faster than the standard library for a page of messages).
"""

from typing import Any

from starlette.responses import Response

from app.jsonio import dumps

__all__ = ["dumps", "json_response"]


def json_response(content: Any, *, status_code: int = 200) -> Response:
    return Response(dumps(content), status_code=status_code, media_type="application/json")
