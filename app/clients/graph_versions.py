"""Graph API versions and the day Meta switches each one off.

Meta keeps a version about two years; a call to a version past its end is answered as if to
the oldest one still alive, with different behaviour. `fab doctor` and `/ready` warn within
WARN_DAYS of the configured version's end. Update END_OF_LIFE as Meta announces dates:
https://developers.facebook.com/docs/graph-api/changelog (the "Available until" column).
"""

import re
from dataclasses import dataclass
from datetime import date

WARN_DAYS = 90

# Major version → the last day it is available (None: Meta has not set one yet).
END_OF_LIFE: dict[int, date | None] = {
    20: date(2026, 9, 24),
    21: date(2027, 1, 21),
    22: date(2027, 5, 20),
    23: date(2027, 10, 8),
    24: date(2028, 2, 18),
    25: date(2028, 7, 29),
    26: None,
    27: None,
}

_VERSION = re.compile(r"v(\d+)\.(\d+)")


@dataclass(frozen=True)
class VersionStatus:
    """How the configured version stands: `ok`, `ending` (within WARN_DAYS), `ended`, or
    `unknown` (not in the table, or not a version at all)."""

    version: str
    state: str
    detail: str
    end_of_life: date | None = None
    days_left: int | None = None

    @property
    def warns(self) -> bool:
        return self.state != "ok"

    def as_dict(self) -> dict[str, object]:
        return {
            "version": self.version,
            "state": self.state,
            "detail": self.detail,
            "end_of_life": self.end_of_life.isoformat() if self.end_of_life else None,
            "days_left": self.days_left,
        }


def version_status(version: str, *, today: date) -> VersionStatus:
    """Where `version` (such as `v25.0`) stands on `today`."""
    match = _VERSION.fullmatch(version)
    if match is None:
        return VersionStatus(version, "unknown", f"{version} is not a Graph API version (vNN.0)")
    major = int(match.group(1))
    if major not in END_OF_LIFE:
        if major < min(END_OF_LIFE):
            return VersionStatus(
                version, "ended", f"{version} was switched off by Meta: use {_newest()}"
            )
        return VersionStatus(
            version,
            "unknown",
            f"{version} is newer than the versions this service knows; check Meta's changelog",
        )
    end = END_OF_LIFE[major]
    if end is None:
        return VersionStatus(version, "ok", f"{version}: Meta has set no end date yet")
    days_left = (end - today).days
    if days_left < 0:
        return VersionStatus(
            version,
            "ended",
            f"{version} was switched off on {end.isoformat()}: set INSTAGRAM_API_VERSION="
            f"{_newest()}",
            end_of_life=end,
            days_left=days_left,
        )
    if days_left <= WARN_DAYS:
        return VersionStatus(
            version,
            "ending",
            f"{version} is switched off on {end.isoformat()} (in {days_left} days): move "
            f"INSTAGRAM_API_VERSION to {_newest()} and check with `fab doctor`",
            end_of_life=end,
            days_left=days_left,
        )
    return VersionStatus(
        version,
        "ok",
        f"{version}: available until {end.isoformat()}",
        end_of_life=end,
        days_left=days_left,
    )


def _newest() -> str:
    return f"v{max(END_OF_LIFE)}.0"
