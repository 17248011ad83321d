"""Meta's error taxonomy: what a failed Graph API call means, as typed errors.

Meta answers a failed call with an error envelope (`{"error": {"code", "error_subcode",
"message", "type", "fbtrace_id"}}`, see `instagram/graph-api.md`). `error_from_envelope` turns
its (code, subcode) into one `InstagramError` subclass. Each class carries the HTTP status and
the machine-readable `code` our clients get; callers catch the class (`except
ConsentRequiredError`), never compare Meta's numbers or our code strings.
"""

import json
from dataclasses import dataclass
from typing import Any

import requests

from app.errors import AppError

# Meta's error codes and subcodes.
TOKEN_INVALID = 190
CONSENT_REQUIRED = 230
INVALID_PARAMETER = 100
PERMISSION_DENIED = 10
OUTSIDE_WINDOW_SUBCODES = frozenset({2534022, 2018278})
# 10/1893063 (since 2026-06): Meta restricted the account from sending for a while (hours).
SENDING_RESTRICTED_SUBCODE = 1893063
RECIPIENT_NOT_FOUND_SUBCODES = frozenset({2534014, 2018001})
USER_UNAVAILABLE = 551
RATE_LIMIT_CODES = frozenset({4, 17, 32, 341, 613, 80002})
TRANSIENT_CODES = frozenset({1, 2})
# A profile read of someone who never messaged the business is refused with 230, or with 100
# whatever the subcode (an id Meta does not show us answers 100/33).
PROFILE_REFUSAL_CODES = frozenset({CONSENT_REQUIRED, INVALID_PARAMETER})
DEFAULT_RETRY_AFTER_SECONDS = 60


@dataclass(frozen=True)
class GraphErrorDetails:
    """What Meta said in its error envelope."""

    http_status: int
    code: int | None
    subcode: int | None
    message: str
    error_type: str | None
    fbtrace_id: str | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "error_subcode": self.subcode,
            "message": self.message,
            "type": self.error_type,
            "fbtrace_id": self.fbtrace_id,
            "http_status": self.http_status,
        }

    def describe(self) -> str:
        """One line for logs and stored reasons: code/subcode, message, trace id."""
        code = f"{self.code}/{self.subcode}" if self.subcode else str(self.code)
        return f"code {code}: {self.message} (fbtrace_id {self.fbtrace_id})"


class InstagramError(AppError):
    """A Graph API call that did not succeed; `graph` holds Meta's error when it sent one."""

    status_code = 502
    code = "instagram_error"
    transient = False

    def __init__(
        self,
        message: str,
        *,
        graph: GraphErrorDetails | None = None,
        status_code: int | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
        transient: bool | None = None,
    ) -> None:
        super().__init__(message, status_code=status_code, code=code, headers=headers)
        self.graph = graph
        if transient is not None:
            self.transient = transient

    @property
    def graph_code(self) -> int | None:
        return self.graph.code if self.graph else None

    def as_record(self) -> dict[str, Any]:
        """A JSON-able description for storage next to a failed message."""
        record: dict[str, Any] = {
            "code": self.code,
            "detail": self.message,
            "status": self.status_code,
        }
        if self.graph:
            record["graph"] = self.graph.as_dict()
        return record


# Errors of our own side of the call: Meta never answered.


class InstagramNotConfiguredError(InstagramError):
    """No access token is configured: no call is made."""

    status_code = 503
    code = "instagram_not_configured"


class InstagramUnreachableError(InstagramError):
    """The connection failed: the request never reached Meta."""

    status_code = 503
    code = "instagram_unreachable"
    transient = True


class InstagramBusyError(InstagramError):
    """Every call slot stayed busy for the queue timeout: the call was not made."""

    status_code = 503
    code = "instagram_busy"
    transient = True


class InstagramTimeoutError(InstagramError):
    """Meta did not answer within the read timeout (a POST may still have been delivered)."""

    status_code = 504
    code = "instagram_timeout"
    transient = True


# Meta's answers (error_from_envelope).


class TokenInvalidError(InstagramError):
    """190: the access token is invalid or expired; re-authentication is needed."""

    status_code = 502
    code = "instagram_token_invalid"


class OutsideWindowError(InstagramError):
    """10 with a window subcode: the customer's last message is older than the window."""

    status_code = 409
    code = "outside_window"


class SendingRestrictedError(InstagramError):
    """10/1893063: Meta has temporarily restricted the account from sending messages; retrying
    soon does not help (it lasts hours), and the account's owner should look at Instagram."""

    status_code = 403
    code = "account_restricted"


class RecipientNotFoundError(InstagramError):
    """The recipient is not a customer of this account, or is unavailable (551)."""

    status_code = 404
    code = "recipient_not_found"


class ConsentRequiredError(InstagramError):
    """Meta refuses a profile: the person has not messaged the business (230, or 100 on a
    profile read)."""

    status_code = 404
    code = "consent_required"


class RateLimitedError(InstagramError):
    """A rate limit was hit; `Retry-After` says when to try again."""

    status_code = 429
    code = "instagram_rate_limited"
    transient = True


class InstagramUnavailableError(InstagramError):
    """Meta failed on its side (codes 1, 2, or an HTTP 5xx): retry later."""

    status_code = 503
    code = "instagram_unavailable"
    transient = True


def error_from_envelope(
    details: GraphErrorDetails, *, retry_after: int, profile_read: bool = False
) -> InstagramError:
    """The typed error for Meta's (code, subcode); `profile_read` when the call read a user's
    profile, where a refusal (230, or 100) means the user has not given consent."""
    code, subcode = details.code, details.subcode
    said = f"Instagram API error {code}" + (f"/{subcode}" if subcode else "")
    said += f": {details.message}"
    if code == TOKEN_INVALID:
        return TokenInvalidError(
            f"{said} The access token is invalid or expired: generate a new one and set "
            "INSTAGRAM_USER_TOKEN.",
            graph=details,
        )
    if profile_read and code in PROFILE_REFUSAL_CODES:
        return ConsentRequiredError(said, graph=details)
    if code == PERMISSION_DENIED and subcode in OUTSIDE_WINDOW_SUBCODES:
        return OutsideWindowError(
            f"{said} The customer's last message is older than the messaging window "
            "(24 hours; 7 days with the HUMAN_AGENT tag).",
            graph=details,
        )
    if code == PERMISSION_DENIED and subcode == SENDING_RESTRICTED_SUBCODE:
        return SendingRestrictedError(
            f"{said} Instagram has temporarily restricted this account from sending "
            "messages (usually for hours): wait, and check the account in the Instagram app.",
            graph=details,
        )
    if subcode in RECIPIENT_NOT_FOUND_SUBCODES or code == USER_UNAVAILABLE:
        return RecipientNotFoundError(said, graph=details)
    if code == CONSENT_REQUIRED:
        return ConsentRequiredError(said, graph=details)
    if code in RATE_LIMIT_CODES:
        return RateLimitedError(said, graph=details, headers={"Retry-After": str(retry_after)})
    if code in TRANSIENT_CODES or details.http_status >= 500:
        return InstagramUnavailableError(said, graph=details)
    return InstagramError(said, graph=details)


def graph_error_details(response: requests.Response) -> GraphErrorDetails:
    """Meta's error envelope from a failed answer (or what the answer was, without one)."""
    try:
        error = response.json()["error"]
        if not isinstance(error, dict):
            raise TypeError
    except (ValueError, KeyError, TypeError):
        return GraphErrorDetails(
            http_status=response.status_code,
            code=None,
            subcode=None,
            message=f"HTTP {response.status_code} without a Graph error body",
            error_type=None,
            fbtrace_id=None,
        )
    return GraphErrorDetails(
        http_status=response.status_code,
        code=_as_int(error.get("code")),
        subcode=_as_int(error.get("error_subcode")),
        message=str(error.get("message") or "no message"),
        error_type=error.get("type"),
        fbtrace_id=error.get("fbtrace_id"),
    )


def retry_after_seconds(response: requests.Response) -> int:
    """When a rate-limited caller may try again: `Retry-After`, else Meta's usage header."""
    header = response.headers.get("Retry-After")
    if header and header.isdigit():
        return int(header)
    usage = response.headers.get("X-Business-Use-Case-Usage")
    if usage:
        try:
            minutes = max(
                int(entry.get("estimated_time_to_regain_access") or 0)
                for entries in json.loads(usage).values()
                for entry in entries
            )
        except (ValueError, TypeError, AttributeError):
            minutes = 0
        if minutes > 0:
            return minutes * 60
    return DEFAULT_RETRY_AFTER_SECONDS


def _as_int(value: object) -> int | None:
    if not isinstance(value, int | float | str):
        return None
    try:
        return int(value)
    except (TypeError, ValueError, OverflowError):
        return None
