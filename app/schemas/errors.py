"""The error body every endpoint answers with, for the OpenAPI document."""

from typing import Any

from pydantic import BaseModel, Field


class ErrorRead(BaseModel):
    detail: Any = Field(description="What went wrong, for a human (a list for validation errors).")
    code: str = Field(description="What went wrong, for a program.", examples=["not_found"])


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` entries for the error statuses an endpoint can answer."""
    descriptions = {
        400: "Malformed request",
        401: "Missing or invalid API key",
        403: "Forbidden",
        404: "Not found",
        409: "Conflict",
        410: "Gone (an expired or unsent attachment, events past the retention)",
        413: "Request body too large",
        422: "Invalid parameters or body",
        429: "Rate limited by Instagram (see Retry-After)",
        502: "Instagram API error",
        503: "Database or Instagram API unavailable",
        504: "Instagram API timeout",
    }
    return {
        status: {
            "model": ErrorRead,
            "description": descriptions.get(status, "Error"),
            # JSON even where the success answer is not (the webhook handshake's text/plain).
            "content": {"application/json": {}},
        }
        for status in statuses
    }
