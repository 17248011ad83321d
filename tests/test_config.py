"""Settings: the original README's variable names, DATABASE_URL precedence, the SQLite default."""

import re
from pathlib import Path

import pytest
from sqlalchemy import make_url

from app.config import Settings


def test_with_no_database_configured_the_service_uses_an_embedded_sqlite_file() -> None:
    settings = Settings(_env_file=None)

    assert settings.sqlalchemy_url == "sqlite:///insta_service.db"
    assert settings.is_sqlite


def test_db_parts_of_the_original_readme_build_a_postgresql_url(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name, value in {
        "DB_DRIVER": "postgresql+psycopg2",
        "DB_USER": "postgres",
        "DB_PASSWORD": "my secret/pa@ss",
        "DB_HOST": "db",
        "DB_PORT": "5433",
        "DB_NAME": "instagram_service",
    }.items():
        monkeypatch.setenv(name, value)

    settings = Settings(_env_file=None)

    url = make_url(settings.sqlalchemy_url)
    assert (url.drivername, url.username, url.host, url.port, url.database) == (
        "postgresql+psycopg2",
        "postgres",
        "db",
        5433,
        "instagram_service",
    )
    assert url.password == "my secret/pa@ss"
    assert not settings.is_sqlite


def test_database_url_wins_over_the_db_parts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DB_HOST", "db")
    monkeypatch.setenv("DB_NAME", "ignored")
    monkeypatch.setenv("DATABASE_URL", "postgresql+psycopg2://u@elsewhere/real")

    assert Settings(_env_file=None).sqlalchemy_url == "postgresql+psycopg2://u@elsewhere/real"


def test_blank_values_in_env_files_mean_unset(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("DATABASE_URL=\nINSTAGRAM_APP_SECRET=\nAPI_KEY=\nINSTAGRAM_ACCOUNT_ID=\n")

    settings = Settings(_env_file=env_file)

    assert settings.is_sqlite
    assert settings.instagram_app_secret is None
    assert settings.api_key is None
    assert settings.account_id is None


def test_every_original_instagram_variable_is_read_from_the_env_file(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text(
        "INSTAGRAM_APP_SECRET=app-secret\n"
        "INSTAGRAM_USER_TOKEN=IGAAtoken\n"
        "INSTAGRAM_WEBHOOK_TOKEN=verify\n"
        "INSTAGRAM_SEND_MESSAGE_URL=https://graph.instagram.com/v22.0/me/messages\n"
        "INSTAGRAM_ACCOUNT_ID=17841472223448520\n"
        "INSTAGRAM_ACCOUNT_SCOPED_ID=17841472223448521\n"
        "POSTGRES_PASSWORD=only-for-compose\n"
    )

    settings = Settings(_env_file=env_file)

    assert settings.instagram_app_secret is not None
    assert settings.instagram_app_secret.get_secret_value() == "app-secret"
    assert settings.instagram_user_token is not None
    assert settings.instagram_user_token.get_secret_value() == "IGAAtoken"
    assert settings.instagram_webhook_token is not None
    assert settings.instagram_webhook_token.get_secret_value() == "verify"
    assert settings.send_message_url == "https://graph.instagram.com/v22.0/me/messages"
    assert settings.account_id == "17841472223448520"


def test_the_scoped_id_of_the_original_readme_serves_as_the_account_id() -> None:
    settings = Settings(_env_file=None, instagram_account_scoped_id="17841472223448520")

    assert settings.account_id == "17841472223448520"


def test_graph_url_and_version_build_the_send_url_unless_one_is_set() -> None:
    settings = Settings(
        _env_file=None, instagram_graph_url="http://127.0.0.1:8001/", instagram_api_version="v23.0"
    )

    assert settings.graph_base_url == "http://127.0.0.1:8001/v23.0"
    assert settings.send_message_url == "http://127.0.0.1:8001/v23.0/me/messages"
    assert (
        Settings(_env_file=None).send_message_url == "https://graph.instagram.com/v22.0/me/messages"
    )


def test_secrets_never_appear_in_the_settings_repr() -> None:
    settings = Settings(
        _env_file=None,
        instagram_app_secret="s3cr3t-app",
        instagram_user_token="IGAAs3cr3t",
        api_key="s3cr3t-key",
        db_password="s3cr3t-db",
        db_host="db",
    )

    shown = repr(settings) + str(settings.model_dump())
    for secret in ("s3cr3t-app", "IGAAs3cr3t", "s3cr3t-key", "s3cr3t-db"):
        assert secret not in shown


@pytest.mark.parametrize("document", [".env.example", "docs/configuration.md"])
def test_every_setting_is_documented(document: str) -> None:
    text = (Path(__file__).parent.parent / document).read_text()

    missing = [name.upper() for name in Settings.model_fields if name.upper() not in text]

    assert missing == []


def test_the_defaults_shown_in_env_example_are_the_real_ones() -> None:
    example = (Path(__file__).parent.parent / ".env.example").read_text()
    defaults = Settings(_env_file=None)
    shown = re.findall(r"^# ([A-Z_]+)=(\S+)$", example, flags=re.MULTILINE)
    checked = 0
    for name, value in shown:
        field = name.lower()
        # URLs built from other settings are examples, not defaults.
        examples = ("database_url", "instagram_send_message_url")
        if field not in Settings.model_fields or field in examples:
            continue
        default = getattr(defaults, field)
        assert Settings(_env_file=None, **{field: value}).model_dump()[field] == (
            default.get_secret_value() if hasattr(default, "get_secret_value") else default
        ), name
        checked += 1

    assert checked >= 20
