"""JSON answers for the hot read endpoints, serialized once.

FastAPI serializes a return value by validating it against the response model first; for a
page of 50 messages that costs more than the database. These endpoints build plain dicts
(shaped like their response model, which still documents them) and answer them directly.
"""

import json
from datetime import UTC, datetime
from typing import Any

from starlette.responses import Response


def _encode(value: object) -> str:
    if isinstance(value, datetime):
        # As pydantic writes it: ISO 8601, UTC as "Z".
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    raise TypeError(f"{type(value).__name__} is not JSON")


def json_response(content: Any, *, status_code: int = 200) -> Response:
    body = json.dumps(content, default=_encode, ensure_ascii=False, separators=(",", ":"))
    return Response(body.encode(), status_code=status_code, media_type="application/json")
