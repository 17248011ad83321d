"""`/health` (the process is up) and `/ready` (it can serve, and how things stand)."""

from datetime import datetime

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from app.api.deps import CarriesApiKeyDep, StatusReporterDep
from app.services.health import Readiness, StatusReport, migration_heads

router = APIRouter(tags=["health"])

READY_EXAMPLE = {
    "status": "ready",
    "checks": {"database": "ok", "schema": "at head"},
    "schema_version": ", ".join(sorted(migration_heads())),  # never a stale revision
    "instagram_token": {
        "state": "valid",
        "detail": "valid, expires in 52 days, 2027-01-20 10:15 UTC",
        "expires_at": "2027-01-20T10:15:00+00:00",
        "days_left": 52,
        "expiry_assumed": False,
        "refreshed_at": "2026-11-21T10:15:00+00:00",
    },
    "graph_api_version": {
        "version": "v25.0",
        "state": "ok",
        "detail": "v25.0: available until 2028-07-29",
        "end_of_life": "2028-07-29",
        "days_left": 607,
    },
    "last_webhook_received_at": "2026-11-29T11:02:13.481000+00:00",
    "backlog": {"profiles_due": 0, "failed_deliveries": 0},
    "history": [
        {
            "account_id": "17841400123456789",
            "gaps_found": 3,
            "gaps_filled": 2,
            "last_sweep_at": "2026-11-30T11:00:00+00:00",
            "last_error": None,
            "backfills_running": 0,
        }
    ],
}
READY_SUMMARY_EXAMPLE = {"status": "not_ready", "failing": ["schema"]}


@router.get(
    "/health",
    summary="Liveness",
    responses={200: {"content": {"application/json": {"example": {"status": "ok"}}}}},
)
def health() -> dict[str, str]:
    """Always `{"status": "ok"}` while the process serves requests."""
    return {"status": "ok"}


@router.get(
    "/ready",
    summary="Readiness and status",
    responses={
        200: {"content": {"application/json": {"example": READY_EXAMPLE}}},
        503: {
            "description": "Not ready (database unreachable, or schema not at head)",
            "content": {"application/json": {"example": READY_SUMMARY_EXAMPLE}},
        },
    },
)
def ready(reporter: StatusReporterDep, full: CarriesApiKeyDep) -> JSONResponse:
    """200 when the database answers and its schema is at the newest migration, else 503.

    Without the API key: only the status and the names of the failing checks (what a probe
    needs). With it: also the access token (valid / expiring / expired / invalid / not
    configured), the Graph API version's end of life, the last webhook received and the
    background backlog — an invalid token does not make the service unready: webhooks must
    still be stored."""
    if not full:
        readiness = reporter.readiness()
        body: dict[str, object] = {
            "status": "ready" if readiness.ready else "not_ready",
            "failing": failing_checks(readiness),
        }
        return _answer(body, ready=readiness.ready)
    report = reporter.report()
    return _answer(ready_body(report), ready=report.readiness.ready)


def _answer(body: dict[str, object], *, ready: bool) -> JSONResponse:
    if ready:
        return JSONResponse(body)
    return JSONResponse({**body, "detail": "Not ready.", "code": "not_ready"}, status_code=503)


def failing_checks(readiness: Readiness) -> list[str]:
    return [
        name
        for name, ok in (("database", readiness.database == "ok"), ("schema", readiness.ready))
        if not ok
    ]


def ready_body(report: StatusReport) -> dict[str, object]:
    ready = report.readiness
    backlog = None
    if report.profiles_due is not None:
        backlog = {
            "profiles_due": report.profiles_due,
            "failed_deliveries": report.failed_deliveries,
        }
    body: dict[str, object] = {
        "status": "ready" if ready.ready else "not_ready",
        "checks": {"database": ready.database, "schema": ready.schema},
        "schema_version": ready.schema_version,
        "instagram_token": report.token.as_dict(),
        "graph_api_version": report.graph_version.as_dict(),
        "last_webhook_received_at": report.last_webhook_at.isoformat()
        if report.last_webhook_at
        else None,
        "backlog": backlog,
        "history": [account.as_dict() for account in report.history]
        if report.history is not None
        else None,
        "disabled_webhook_endpoints": [
            {**endpoint, "since": _iso(endpoint["since"])}
            for endpoint in report.disabled_endpoints or []
        ],
    }
    if report.media is not None:
        # Only with MEDIA_ARCHIVE on: where the bytes go, and the downloads waiting.
        body["media"] = report.media
    return body


def _iso(value: object) -> object:
    return value.isoformat() if isinstance(value, datetime) else value
