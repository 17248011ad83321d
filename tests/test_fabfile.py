"""The fabfile offers the tasks the README and CI call."""

import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_fab_lists_every_task_the_readme_names() -> None:
    listing = subprocess.run(
        [sys.executable, "-m", "fabric", "--list"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout

    listed = {line.split()[0] for line in listing.splitlines()[1:] if line.startswith("  ")}
    expected = {
        "runserver",
        "makemigrations",
        "migrate",
        "test",
        "lint",
        "demo",
        "sandbox",
        "replay",
        "doctor",
        "subscribe",
    }
    assert expected <= listed, listing
