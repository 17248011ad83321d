"""Opaque keyset cursors: a position in a list ordered by (time, id)."""

import base64
import binascii
from datetime import UTC, datetime

from app.errors import InvalidInputError
from app.repositories.base import Position


def encode_cursor(position: Position) -> str:
    raw = f"{position.at.astimezone(UTC).isoformat()}|{position.id}"
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, *, parameter: str) -> Position:
    """The position a cursor names; 422 naming the parameter when it is not one of ours."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        at, _, row_id = raw.partition("|")
        moment = datetime.fromisoformat(at)
        if moment.tzinfo is None:
            raise ValueError
        return Position(at=moment.astimezone(UTC), id=int(row_id))
    except (ValueError, UnicodeDecodeError, binascii.Error):
        raise InvalidInputError(
            f"`{parameter}` is not a cursor this API returned.", code="invalid_cursor"
        ) from None
