"""`/health` and `/ready`."""

from pathlib import Path

from tests.conftest import StartService
from tests.helpers import ServiceClient


def test_health_is_ok(api: ServiceClient) -> None:
    assert api.get("/health").json() == {"status": "ok"}


def test_ready_when_the_database_is_at_the_newest_migration(api: ServiceClient) -> None:
    response = api.get("/ready")

    assert response.status_code == 200
    body = response.json()
    assert (body["status"], body["checks"]) == ("ready", {"database": "ok", "schema": "at head"})


def test_not_ready_before_migrations(start_service: StartService, tmp_path: Path) -> None:
    server = start_service(database_url=f"sqlite:///{tmp_path / 'empty.db'}")
    with ServiceClient(server.url) as client:
        response = client.get("/ready")

    assert response.status_code == 503
    body = response.json()
    assert body["code"] == "not_ready"
    assert body["checks"]["schema"] == "not migrated: run `fab migrate`"


def test_not_ready_when_the_database_is_down(start_service: StartService) -> None:
    server = start_service(
        database_url="postgresql+psycopg2://nobody@127.0.0.1:1/none", db_connect_timeout=1
    )
    with ServiceClient(server.url) as client:
        ready = client.get("/ready")
        health = client.get("/health")

    assert ready.status_code == 503
    assert ready.json()["checks"]["database"].startswith("unreachable")
    assert health.status_code == 200
