"""/ready without the API key says only whether the service is ready and which checks fail;
with the key, the full report (token, Graph API version, backlog)."""

from sqlalchemy import create_engine, text

from app.sandbox.server import BackgroundServer
from tests.conftest import StartService
from tests.helpers import API_KEY, ServiceClient


def test_without_the_key_ready_says_only_status_and_failing_checks(
    start_service: StartService,
) -> None:
    server = start_service(api_key=API_KEY, allow_open_api=False)
    with ServiceClient(server.url) as anonymous:
        answer = anonymous.get("/ready")

    assert answer.status_code == 200
    assert answer.json() == {"status": "ready", "failing": []}


def test_with_the_key_ready_gives_the_full_report(start_service: StartService) -> None:
    server = start_service(api_key=API_KEY, allow_open_api=False)
    with ServiceClient(server.url, api_key=API_KEY) as client:
        report = client.get("/ready").json()

    assert report["status"] == "ready"
    assert report["instagram_token"]["state"] in ("valid", "unknown")
    assert report["graph_api_version"]["version"] == "v25.0"
    assert report["graph_api_version"]["state"] == "ok"
    assert set(report["backlog"]) == {"profiles_due", "failed_deliveries"}


def test_a_wrong_key_gets_the_short_answer_too(start_service: StartService) -> None:
    server = start_service(api_key=API_KEY, allow_open_api=False)
    with ServiceClient(server.url, api_key="x" * 40) as client:
        answer = client.get("/ready")

    assert set(answer.json()) == {"status", "failing"}


def test_a_schema_not_at_head_is_named_without_details(
    start_service: StartService, database_url: str
) -> None:
    server = start_service(api_key=API_KEY, allow_open_api=False)
    engine = create_engine(database_url)
    with engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = '0001'"))
    engine.dispose()
    with ServiceClient(server.url) as anonymous:
        answer = anonymous.get("/ready")
    with ServiceClient(server.url, api_key=API_KEY) as client:
        full = client.get("/ready")

    assert answer.status_code == 503
    assert answer.json() == {
        "status": "not_ready",
        "failing": ["schema"],
        "detail": "Not ready.",
        "code": "not_ready",
    }
    assert full.status_code == 503
    assert full.json()["checks"]["schema"].startswith("at 0001, expected")


def test_an_open_api_on_purpose_shows_everyone_the_full_report(
    service: BackgroundServer,
) -> None:
    with ServiceClient(service.url) as anonymous:
        report = anonymous.get("/ready").json()

    assert "instagram_token" in report
