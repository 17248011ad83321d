"""The service refuses to start with an open API nobody asked for, example values, short
secrets, or a Graph API over plain HTTP; and says why in one line."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from app.config import Settings
from app.main import create_app
from app.safety import UnsafeConfigurationError, is_loopback_url, refusals
from tests.helpers import API_KEY, APP_SECRET, VERIFY_TOKEN

REPO_ROOT = Path(__file__).resolve().parents[1]
SAFE = {
    "api_key": API_KEY,
    "instagram_app_secret": APP_SECRET,
    "instagram_webhook_token": VERIFY_TOKEN,
}


def settings(**values: object) -> Settings:
    return Settings(_env_file=None, **{**SAFE, **values})


def test_the_test_settings_are_safe() -> None:
    assert refusals(settings()) == []


def test_without_an_api_key_the_service_refuses_to_start() -> None:
    [reason] = refusals(settings(api_key=None))

    assert "API_KEY is not set" in reason
    assert "ALLOW_OPEN_API=true" in reason
    with pytest.raises(UnsafeConfigurationError, match="API_KEY is not set"):
        create_app(settings(api_key=None))


def test_an_open_api_is_served_when_asked_for_explicitly() -> None:
    assert refusals(settings(api_key=None, allow_open_api=True)) == []


@pytest.mark.parametrize(
    ("field", "variable"),
    [
        ("api_key", "API_KEY"),
        ("instagram_app_secret", "INSTAGRAM_APP_SECRET"),
        ("instagram_webhook_token", "INSTAGRAM_WEBHOOK_TOKEN"),
        ("instagram_user_token", "INSTAGRAM_USER_TOKEN"),
        ("instagram_account_id", "INSTAGRAM_ACCOUNT_ID"),
        ("db_password", "DB_PASSWORD"),
    ],
)
def test_example_placeholders_are_refused(field: str, variable: str) -> None:
    [reason] = refusals(settings(**{field: "<fill-me-in>"}))

    assert reason.startswith(f"{variable} is still the example value <fill-me-in>")


@pytest.mark.parametrize(
    ("field", "variable"),
    [
        ("api_key", "API_KEY"),
        ("instagram_app_secret", "INSTAGRAM_APP_SECRET"),
        ("instagram_webhook_token", "INSTAGRAM_WEBHOOK_TOKEN"),
    ],
)
def test_secrets_shorter_than_32_characters_are_refused(field: str, variable: str) -> None:
    assert refusals(settings(**{field: "x" * 32})) == []
    [reason] = refusals(settings(**{field: "x" * 31}))

    assert reason.startswith(f"{variable} is shorter than 32 characters")
    assert "x" * 31 not in reason  # the value itself is never repeated


def test_unset_app_secret_and_verify_token_are_not_refused() -> None:
    # Not set is a warning (webhooks are refused, the handshake fails), not an unsafe value.
    assert refusals(settings(instagram_app_secret=None, instagram_webhook_token=None)) == []


@pytest.mark.parametrize(
    ("url", "refused"),
    [
        ("https://graph.instagram.com", False),
        ("http://127.0.0.1:8001", False),
        ("http://localhost:8001", False),
        ("http://[::1]:8001", False),
        ("http://graph.instagram.com", True),
        ("http://10.0.0.5:8001", True),
        ("ftp://graph.instagram.com", True),
    ],
)
def test_a_graph_api_over_plain_http_is_refused_unless_on_loopback(url: str, refused: bool) -> None:
    reasons = refusals(settings(instagram_graph_url=url))
    send_reasons = refusals(settings(instagram_send_message_url=f"{url}/v25.0/me/messages"))

    assert bool(reasons) == refused
    assert bool(send_reasons) == refused
    if refused:
        assert reasons[0].startswith("INSTAGRAM_GRAPH_URL must be an https:// URL")
        assert send_reasons[0].startswith("INSTAGRAM_SEND_MESSAGE_URL must be an https:// URL")


def test_loopback_urls() -> None:
    assert is_loopback_url("http://127.0.0.2:1")
    assert not is_loopback_url("http://127.0.0.1.example.com")


def test_env_example_copied_as_it_is_does_not_start(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    shutil.copy(REPO_ROOT / ".env.example", env_file)

    reasons = refusals(Settings(_env_file=env_file))

    refused = {reason.split(" ", 1)[0] for reason in reasons}
    assert {"API_KEY", "INSTAGRAM_APP_SECRET", "INSTAGRAM_WEBHOOK_TOKEN", "DB_PASSWORD"} <= refused


def test_the_default_graph_api_version_is_current() -> None:
    version = Settings(_env_file=None).instagram_api_version
    assert int(version.removeprefix("v").split(".")[0]) >= 25


@pytest.mark.slow
def test_the_process_exits_with_one_line_saying_why(tmp_path: Path) -> None:
    environment = {
        name: value
        for name, value in os.environ.items()
        if name.upper() not in {field.upper() for field in Settings.model_fields}
    }
    environment["PYTHONPATH"] = str(REPO_ROOT)
    environment["SQLITE_PATH"] = str(tmp_path / "refused.db")

    completed = subprocess.run(
        [sys.executable, "-m", "uvicorn", "app.main:app", "--port", "0"],
        cwd=tmp_path,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert completed.returncode != 0
    lines = [line for line in completed.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, completed.stderr
    assert lines[0].startswith("insta-service will not start: API_KEY is not set")
    assert not (tmp_path / "refused.db").exists()  # nothing was started or created
