"""The Graph API version table: warnings within 90 days of a version's end."""

from datetime import date

import pytest

from app.clients.graph_versions import END_OF_LIFE, WARN_DAYS, version_status
from app.config import Settings

TODAY = date(2026, 11, 30)


def test_the_default_version_is_far_from_its_end() -> None:
    status = version_status(Settings(_env_file=None).instagram_api_version, today=TODAY)

    assert status.state == "ok"
    assert not status.warns


@pytest.mark.parametrize(
    ("version", "today", "state", "days_left"),
    [
        ("v25.0", TODAY, "ok", 607),
        ("v22.0", date(2027, 2, 19), "ending", 90),
        ("v22.0", date(2027, 2, 18), "ok", 91),
        ("v21.0", TODAY, "ending", 52),
        ("v21.0", date(2027, 1, 21), "ending", 0),
        ("v20.0", TODAY, "ended", -67),
        ("v19.0", TODAY, "ended", None),
        ("v27.0", TODAY, "ok", None),
        ("v31.0", TODAY, "unknown", None),
        ("latest", TODAY, "unknown", None),
    ],
)
def test_version_states(version: str, today: date, state: str, days_left: int | None) -> None:
    status = version_status(version, today=today)

    assert (status.state, status.days_left) == (state, days_left)
    assert status.warns == (state != "ok")
    assert version in status.detail


def test_an_ending_version_says_when_and_what_to_do() -> None:
    status = version_status("v21.0", today=TODAY)

    assert "2027-01-21" in status.detail
    assert "INSTAGRAM_API_VERSION" in status.detail


def test_the_table_is_ordered_and_warns_ninety_days_ahead() -> None:
    dates = [end for end in END_OF_LIFE.values() if end is not None]
    assert dates == sorted(dates)
    assert WARN_DAYS == 90
