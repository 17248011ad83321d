"""`fab doctor` and `fab subscribe`: each check passing and failing, with a fix; exit codes."""

import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from sqlalchemy import create_engine, update
from sqlalchemy.orm import sessionmaker

from app import cli
from app.config import Settings, get_settings
from app.models import InstagramToken, utcnow
from app.services.doctor import Check, run_checks
from app.services.subscription import WEBHOOK_FIELDS
from tests.conftest import alembic_config
from tests.helpers import ACCOUNT_ID, ServiceClient
from tests.ops.conftest import MakeSettings, Process, update_sandbox_tokens

REPO_ROOT = Path(__file__).resolve().parents[2]
APP_SCOPED_ID = "9876543210123456"  # what the sandbox's /me answers as `id`


def subscribe_all(meta: ServiceClient, token: str | None = None) -> None:
    fields = ",".join(WEBHOOK_FIELDS)
    tokens = meta.get("/_sandbox/tokens").json()
    response = meta.post(
        "/v25.0/me/subscribed_apps",
        params={"subscribed_fields": fields},
        headers={"Authorization": f"Bearer {token or tokens[0]['value']}"},
    )
    assert response.status_code == 200, response.text


@pytest.fixture
def doctor(make_settings: MakeSettings, clock: Any) -> Iterator[Any]:
    """Run the checks with these settings; returns them by name."""
    made: list[Any] = []

    def run(**overrides: Any) -> dict[str, Check]:
        settings = make_settings(**overrides)
        engine = create_engine(settings.sqlalchemy_url)
        made.append(engine)
        process = Process(settings, sessionmaker(bind=engine), clock)
        checks = run_checks(
            settings=settings, engine=engine, tokens=process.store, instagram=process.instagram
        )
        process.close()
        assert len({check.name for check in checks}) == len(checks)
        return {check.name: check for check in checks}

    yield run
    for engine in made:
        engine.dispose()


def test_every_check_passes_on_a_good_setup(doctor: Any, meta: ServiceClient) -> None:
    subscribe_all(meta)

    checks = doctor()

    assert list(checks) == [
        "configuration",
        "app secret",
        "verify token",
        "database",
        "token",
        "account id",
        "webhook subscription",
        "token expiry",
        "graph api version",
        "history",
        "media archive",
    ]
    assert all(check.status == "ok" for check in checks.values()), checks
    who = f"@sandbox_business (user_id {ACCOUNT_ID})"
    assert checks["token"].detail == f"valid: GET /me answers for {who}"
    assert checks["account id"].detail == f"INSTAGRAM_ACCOUNT_ID = /me user_id {ACCOUNT_ID}"
    assert checks["token expiry"].detail.startswith("valid, expires in 60 days")
    assert checks["database"].detail.startswith("reachable, schema at head")


def test_what_would_stop_the_service_fails_the_configuration_check(
    doctor: Any, meta: ServiceClient
) -> None:
    checks = doctor(api_key="<a-long-random-string>", instagram_webhook_token="short")

    check = checks["configuration"]
    assert check.failed
    assert "API_KEY is still the example value" in check.detail
    assert "INSTAGRAM_WEBHOOK_TOKEN is shorter than 32 characters" in check.detail
    assert "short" not in check.line().replace("shorter", "")


def test_an_open_api_on_purpose_passes_and_says_so(doctor: Any, meta: ServiceClient) -> None:
    check = doctor(api_key=None, allow_open_api=True)["configuration"]

    assert (check.status, check.detail) == ("ok", "safe to serve (ALLOW_OPEN_API: the API is open)")


@pytest.mark.parametrize(
    ("version", "status"), [("v25.0", "ok"), ("v21.0", "warn"), ("v20.0", "fail")]
)
def test_the_graph_api_version_is_checked_against_its_end_of_life(
    doctor: Any, meta: ServiceClient, version: str, status: str
) -> None:
    check = doctor(instagram_api_version=version)["graph api version"]

    assert check.status == status
    assert version in check.detail
    if status != "ok":
        assert "INSTAGRAM_API_VERSION" in check.line()


def test_missing_secrets_fail_with_a_fix(doctor: Any, meta: ServiceClient) -> None:
    subscribe_all(meta)

    checks = doctor(instagram_app_secret=None, instagram_webhook_token=None)

    for name, variable in (
        ("app secret", "INSTAGRAM_APP_SECRET"),
        ("verify token", "INSTAGRAM_WEBHOOK_TOKEN"),
    ):
        assert checks[name].failed
        assert checks[name].detail == "not set"
        assert variable in checks[name].line()
        assert "fix:" in checks[name].line()


def test_an_unreachable_database_fails_and_skips_the_expiry(
    doctor: Any, meta: ServiceClient
) -> None:
    checks = doctor(
        database_url="postgresql+psycopg2://nobody@127.0.0.1:1/none", db_connect_timeout=1
    )

    assert checks["database"].failed
    assert checks["database"].detail.startswith("unreachable")
    assert "DATABASE_URL" in (checks["database"].fix or "")
    assert checks["token expiry"].status == "skip"


def test_a_database_behind_the_migrations_fails_with_fab_migrate(
    doctor: Any, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'behind.db'}"
    command.upgrade(alembic_config(url), "0002")

    checks = doctor(database_url=url)

    assert checks["database"].failed
    assert checks["database"].fix == "run `fab migrate`"


def test_an_invalid_token_fails_and_skips_what_needs_it(doctor: Any, meta: ServiceClient) -> None:
    update_sandbox_tokens(meta, revoked=True)

    checks = doctor()

    assert checks["token"].failed
    assert "190" in checks["token"].detail
    assert "INSTAGRAM_USER_TOKEN" in (checks["token"].fix or "")
    assert checks["account id"].status == "skip"
    assert checks["webhook subscription"].status == "skip"
    assert checks["token expiry"].failed  # Instagram's 190 marked it
    assert checks["token expiry"].detail.startswith("Instagram rejected it")


def test_no_token_fails(doctor: Any) -> None:
    checks = doctor(instagram_user_token=None)

    assert checks["token"].failed
    assert checks["token"].detail == "INSTAGRAM_USER_TOKEN is not set"
    assert checks["token expiry"].status == "skip"


def test_an_unreachable_graph_api_fails_with_a_different_fix(doctor: Any) -> None:
    checks = doctor(instagram_graph_url="http://127.0.0.1:9")

    assert checks["token"].failed
    assert "INSTAGRAM_GRAPH_URL" in (checks["token"].fix or "")


def test_the_app_scoped_id_is_the_classic_mistake(doctor: Any, meta: ServiceClient) -> None:
    subscribe_all(meta)

    checks = doctor(instagram_account_id=APP_SCOPED_ID)

    check = checks["account id"]
    assert check.failed
    assert "app-scoped `id`" in check.detail
    assert check.fix == f"set INSTAGRAM_ACCOUNT_ID={ACCOUNT_ID} (/me's user_id)"


def test_another_accounts_id_fails(doctor: Any, meta: ServiceClient) -> None:
    checks = doctor(instagram_account_id=None, instagram_account_scoped_id="17841499999999999")

    check = checks["account id"]
    assert check.failed
    assert check.detail.startswith("INSTAGRAM_ACCOUNT_SCOPED_ID = 17841499999999999")
    assert ACCOUNT_ID in (check.fix or "")


def test_an_unset_account_id_passes_with_advice(doctor: Any, meta: ServiceClient) -> None:
    checks = doctor(instagram_account_id=None)

    assert checks["account id"].status == "ok"
    assert f"INSTAGRAM_ACCOUNT_ID={ACCOUNT_ID}" in checks["account id"].detail


def test_missing_webhook_fields_fail_until_subscribed(doctor: Any, meta: ServiceClient) -> None:
    meta.post(
        "/v25.0/me/subscribed_apps",
        params={"subscribed_fields": "messages"},
        headers={"Authorization": f"Bearer {meta.get('/_sandbox/tokens').json()[0]['value']}"},
    )

    check = doctor()["webhook subscription"]

    assert check.failed
    assert "message_reactions" in check.detail
    assert check.fix == "run `fab subscribe`"
    subscribe_all(meta)
    assert doctor()["webhook subscription"].status == "ok"


def test_an_expired_token_fails(doctor: Any, meta: ServiceClient, database_url: str) -> None:
    subscribe_all(meta)
    doctor()  # stores the token
    engine = create_engine(database_url)
    with engine.begin() as connection:
        connection.execute(update(InstagramToken).values(expires_at=utcnow()))
    engine.dispose()

    check = doctor()["token expiry"]

    assert check.failed
    assert check.detail.startswith("expired")


# The commands


def secret(value: Any) -> str:
    assert value is not None
    return value.get_secret_value()


@pytest.fixture
def environment(
    monkeypatch: pytest.MonkeyPatch, make_settings: MakeSettings
) -> Iterator[dict[str, str]]:
    """The service's settings as environment variables, as an operator's shell has them."""
    settings: Settings = make_settings()
    variables = {
        "DATABASE_URL": settings.sqlalchemy_url,
        "INSTAGRAM_APP_SECRET": secret(settings.instagram_app_secret),
        "INSTAGRAM_WEBHOOK_TOKEN": secret(settings.instagram_webhook_token),
        "INSTAGRAM_USER_TOKEN": secret(settings.instagram_user_token),
        "INSTAGRAM_ACCOUNT_ID": ACCOUNT_ID,
        "INSTAGRAM_GRAPH_URL": settings.instagram_graph_url,
        "INSTAGRAM_GET_RETRIES": "0",
        "API_KEY": secret(settings.api_key),
    }
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    yield variables
    get_settings.cache_clear()


def test_subscribe_then_doctor_from_the_command_line(
    environment: dict[str, str], meta: ServiceClient, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["doctor"]) == 1
    failing = capsys.readouterr().out
    assert "FAIL  webhook subscription: not subscribed to messages" in failing
    assert "fix: run `fab subscribe`" in failing
    assert "1 of 11 checks failed" in failing

    assert cli.main(["subscribe"]) == 0
    assert capsys.readouterr().out.strip() == f"subscribed to: {', '.join(WEBHOOK_FIELDS)}"
    assert meta.get("/_sandbox/subscription").json()["subscribed_fields"] == list(WEBHOOK_FIELDS)

    assert cli.main(["doctor"]) == 0
    passing = capsys.readouterr().out
    assert passing.count("OK    ") == 11
    assert passing.strip().endswith("all checks passed")


def test_subscribe_fails_with_an_invalid_token(
    environment: dict[str, str], meta: ServiceClient, capsys: pytest.CaptureFixture[str]
) -> None:
    update_sandbox_tokens(meta, revoked=True)

    assert cli.main(["subscribe"]) == 1
    assert "subscribing failed: Instagram API error 190/460" in capsys.readouterr().out


@pytest.mark.slow
def test_doctor_exits_non_zero_as_a_process(environment: dict[str, str], tmp_path: Path) -> None:
    finished = subprocess.run(
        [sys.executable, "-m", "app.cli", "doctor"],
        cwd=tmp_path,
        env={**environment, "PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO_ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert finished.returncode == 1
    assert "FAIL  webhook subscription" in finished.stdout
    for name in (
        "INSTAGRAM_APP_SECRET",
        "INSTAGRAM_WEBHOOK_TOKEN",
        "INSTAGRAM_USER_TOKEN",
        "API_KEY",
    ):
        assert environment[name] not in finished.stdout + finished.stderr


def test_refreshes_failing_near_the_end_fail_the_expiry(
    doctor: Any, meta: ServiceClient, database_url: str
) -> None:
    subscribe_all(meta)
    doctor()  # stores the token
    engine = create_engine(database_url)
    with engine.begin() as connection:
        connection.execute(
            update(InstagramToken).values(
                expires_at=utcnow() + timedelta(days=3),
                expiry_assumed=False,
                refresh_error="Instagram API error 2: down",
            )
        )
    engine.dispose()

    check = doctor()["token expiry"]

    assert check.failed
    assert "the last refresh failed: Instagram API error 2: down" in check.detail
    assert "refresh errors" in (check.fix or "")


def test_the_media_archive_check_says_whether_its_store_can_be_used(
    doctor: Any, tmp_path: Path
) -> None:
    assert doctor()["media archive"].status == "ok"
    stored = doctor(media_archive="local", media_dir=str(tmp_path / "media"))["media archive"]
    assert (stored.status, stored.detail) == ("ok", "local: writable")
    blocked = tmp_path / "a-file"
    blocked.write_text("not a directory")

    check = doctor(media_archive="local", media_dir=str(blocked))["media archive"]

    assert check.status == "fail"
    assert check.fix == "make MEDIA_DIR a directory the service can write"
