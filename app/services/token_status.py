"""What `/ready`, `/metrics`, `fab doctor` and the accounts API say about an account's token."""

from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from app.models import Account

RE_AUTHENTICATE = (
    "generate a new token (App Dashboard → Instagram → API setup with Instagram login → "
    "Generate token), then give it to `fab account-add --token …` (or POST /api/v1/accounts), "
    "or, for the environment's account, set INSTAGRAM_USER_TOKEN and restart the service; "
    "`fab doctor` checks it"
)


@dataclass(frozen=True)
class TokenStatus:
    """The token's state and a sentence about it (with the fix when one is needed)."""

    # not_configured | unknown | valid | expiring | expired | invalid
    state: str
    detail: str
    expires_at: datetime | None = None
    days_left: float | None = None
    expiry_assumed: bool | None = None
    refreshed_at: datetime | None = None
    refresh_error: str | None = None
    invalid_since: datetime | None = None

    def as_dict(self) -> dict[str, Any]:
        report = {key: value for key, value in asdict(self).items() if value is not None}
        for key in ("expires_at", "refreshed_at", "invalid_since"):
            if key in report:
                report[key] = report[key].isoformat()
        if self.days_left is not None:
            report["days_left"] = int(self.days_left)
        return report


NOT_CONFIGURED = TokenStatus(
    state="not_configured",
    detail="INSTAGRAM_USER_TOKEN is not set: profiles and sending are unavailable",
)
NOT_STORED = TokenStatus(
    state="unknown", detail="no token stored for this account (add one: `fab account-add`)"
)


def status_of(row: Account, *, now: datetime, refresh_window: timedelta) -> TokenStatus:
    """The stored token's state at `now`; `refresh_window` is how long before its expiry the
    refresh job renews it."""
    assert row.expires_at is not None
    days_left = (row.expires_at - now).total_seconds() / 86400
    state, detail = _describe(
        row, expires_at=row.expires_at, days_left=days_left, refresh_window=refresh_window
    )
    return TokenStatus(
        state=state,
        detail=detail,
        expires_at=row.expires_at,
        days_left=days_left,
        expiry_assumed=row.expiry_assumed,
        refreshed_at=row.refreshed_at,
        refresh_error=row.refresh_error,
        invalid_since=row.invalid_since,
    )


def _describe(
    row: Account, *, expires_at: datetime, days_left: float, refresh_window: timedelta
) -> tuple[str, str]:
    when = f"{expires_at:%Y-%m-%d %H:%M} UTC"
    if row.invalid_since is not None:
        return "invalid", (
            f"Instagram rejected it ({row.invalid_reason}) since "
            f"{row.invalid_since:%Y-%m-%d %H:%M} UTC: {RE_AUTHENTICATE}"
        )
    if days_left <= 0:
        return "expired", f"expired {when}: {RE_AUTHENTICATE}"
    guess = " (assumed: 60 days after it was first seen)" if row.expiry_assumed else ""
    in_days = f"expires in {int(days_left)} days, {when}{guess}"
    if days_left <= refresh_window.days:
        failure = f"; the last refresh failed: {row.refresh_error}" if row.refresh_error else ""
        return "expiring", f"{in_days}; the refresh job renews it{failure}"
    return "valid", f"valid, {in_days}"
