"""`/health` and `/ready`."""

from pathlib import Path

from fastapi.testclient import TestClient

from tests import stack as shared
from tests.conftest import InProcess
from tests.helpers import ServiceClient


def test_health_is_ok(service_in_process: TestClient) -> None:
    # No database behind it: liveness checks nothing else.
    response = service_in_process.get("/health")

    assert (response.status_code, response.json()) == (200, {"status": "ok"})


def test_ready_when_the_database_is_at_the_newest_migration(api: ServiceClient) -> None:
    response = api.get("/ready")

    assert response.status_code == 200
    body = response.json()
    assert (body["status"], body["checks"]) == ("ready", {"database": "ok", "schema": "at head"})


def test_not_ready_before_migrations(in_process: InProcess, tmp_path: Path) -> None:
    empty = shared.service_settings(
        database_url=f"sqlite:///{tmp_path / 'empty.db'}", graph_url=shared.NOWHERE_URL
    )
    response = in_process(empty).get("/ready")

    assert response.status_code == 503
    body = response.json()
    assert body["code"] == "not_ready"
    assert body["checks"]["schema"] == "not migrated: run `fab migrate`"


def test_not_ready_when_the_database_is_down(database_down: TestClient) -> None:
    ready = database_down.get("/ready")
    health = database_down.get("/health")

    assert ready.status_code == 503
    assert ready.json()["checks"]["database"].startswith("unreachable")
    assert health.status_code == 200
