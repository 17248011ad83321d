"""docker-compose.yml and the Dockerfile, read (no Docker engine runs here): PostgreSQL not
published and refusing the example password, the app non-root with a healthcheck on /ready,
and only the run-time requirements in the image."""

import os
import re
import stat
import subprocess
from pathlib import Path

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]
COMPOSE = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())
DOCKERFILE = (REPO_ROOT / "Dockerfile").read_text()


def test_postgresql_is_not_published() -> None:
    assert "ports" not in COMPOSE["services"]["db"]


def test_the_app_is_published_on_the_hosts_loopback_only() -> None:
    assert COMPOSE["services"]["app"]["ports"] == ["127.0.0.1:8000:8000"]


def db_entrypoint(tmp_path: Path, password: str) -> subprocess.CompletedProcess[str]:
    """Run the db service's entrypoint script with a stand-in docker-entrypoint.sh."""
    script = COMPOSE["services"]["db"]["entrypoint"][2].replace("$$", "$")
    stand_in = tmp_path / "docker-entrypoint.sh"
    stand_in.write_text('#!/bin/sh\necho started "$@"\n')
    stand_in.chmod(stand_in.stat().st_mode | stat.S_IEXEC)
    return subprocess.run(
        ["sh", "-c", script],
        env={"PATH": f"{tmp_path}:{os.environ['PATH']}", "POSTGRES_PASSWORD": password},
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    )


@pytest.mark.parametrize("password", ["mysecretpassword", "postgres", "<database-password>"])
def test_the_database_refuses_the_example_password(tmp_path: Path, password: str) -> None:
    finished = db_entrypoint(tmp_path, password)

    assert finished.returncode == 1
    assert "POSTGRES_PASSWORD is the example value" in finished.stderr


def test_the_database_starts_with_a_password_of_its_own(tmp_path: Path) -> None:
    finished = db_entrypoint(tmp_path, "f3k9-Qw7z-long-and-random")

    assert finished.returncode == 0
    assert finished.stdout.strip() == "started postgres"


def test_the_app_needs_an_api_key_and_the_db_password() -> None:
    app = COMPOSE["services"]["app"]
    assert app["environment"]["API_KEY"].startswith("${API_KEY:?")
    db = COMPOSE["services"]["db"]["environment"]
    assert db["POSTGRES_PASSWORD"].startswith("${POSTGRES_PASSWORD:?")


def test_the_image_runs_as_a_non_root_user_with_a_healthcheck_on_ready() -> None:
    users = re.findall(r"^USER (\S+)$", DOCKERFILE, flags=re.MULTILINE)
    assert users
    assert users[-1] not in ("root", "0")
    [healthcheck] = re.findall(r"^HEALTHCHECK .*(?:\n .*)*", DOCKERFILE, flags=re.MULTILINE)
    assert "/ready" in healthcheck


def test_the_image_installs_only_the_run_time_requirements() -> None:
    installs = re.findall(r"pip install (.+)$", DOCKERFILE, flags=re.MULTILINE)
    assert installs == ["-r requirements.txt"]
    runtime = (REPO_ROOT / "requirements.txt").read_text().lower()
    for tool in ("pytest", "ruff", "fabric", "hypothesis", "schemathesis", "responses", "moto"):
        assert not re.search(rf"^{tool}\b", runtime, flags=re.MULTILINE), tool
    copied = re.findall(r"^COPY (?:--\S+ )*(\S+)", DOCKERFILE, flags=re.MULTILINE)
    assert set(copied) == {"requirements.txt", "alembic.ini", "alembic", "app"}
