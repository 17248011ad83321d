"""Opaque keyset cursors: a position in a list ordered by (time, id)."""

import base64
import binascii
import re
from datetime import UTC, datetime

from app.errors import InvalidInputError
from app.repositories.base import Position


def encode_cursor(position: Position) -> str:
    raw = f"{position.at.astimezone(UTC).isoformat()}|{position.id}"
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


# A row id as the database holds it: a BIGINT, never negative.
_ROW_ID = re.compile(r"[0-9]{1,19}")
_MAX_ROW_ID = 2**63 - 1


def decode_cursor(cursor: str, *, parameter: str) -> Position:
    """The position a cursor names; 422 naming the parameter when it is not one of ours
    (tampered ones included: dates past what the database stores, ids past 64 bits)."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        at, _, row_id = raw.partition("|")
        moment = datetime.fromisoformat(at)
        if moment.tzinfo is None or not _ROW_ID.fullmatch(row_id) or int(row_id) > _MAX_ROW_ID:
            raise ValueError
        moment = moment.astimezone(UTC)
        if not 1970 <= moment.year <= 9998:
            raise ValueError  # no message is from then; 9999 overflows when shifted
        return Position(at=moment, id=int(row_id))
    except (ValueError, OverflowError, UnicodeDecodeError, binascii.Error):
        raise InvalidInputError(
            f"`{parameter}` is not a cursor this API returned.", code="invalid_cursor"
        ) from None
