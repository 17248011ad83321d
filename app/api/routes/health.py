"""`/health` (the process is up) and `/ready` (it can serve, and how things stand)."""

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from app.api.deps import StatusReporterDep
from app.services.health import StatusReport, migration_heads

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
    "last_webhook_received_at": "2026-11-29T11:02:13.481000+00:00",
    "backlog": {"profiles_due": 0, "failed_deliveries": 0},
}


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
        503: {"description": "Not ready (database unreachable, or schema not at head)"},
    },
)
def ready(reporter: StatusReporterDep) -> JSONResponse:
    """200 when the database answers and its schema is at the newest migration, else 503.
    Also reports the access token (valid / expiring / expired / invalid / not configured),
    the last webhook received and the background backlog — an invalid token does not make
    the service unready: webhooks must still be stored."""
    report = reporter.report()
    body = ready_body(report)
    if report.readiness.ready:
        return JSONResponse(body)
    return JSONResponse({**body, "detail": "Not ready.", "code": "not_ready"}, status_code=503)


def ready_body(report: StatusReport) -> dict[str, object]:
    ready = report.readiness
    backlog = None
    if report.profiles_due is not None:
        backlog = {
            "profiles_due": report.profiles_due,
            "failed_deliveries": report.failed_deliveries,
        }
    return {
        "status": "ready" if ready.ready else "not_ready",
        "checks": {"database": ready.database, "schema": ready.schema},
        "schema_version": ready.schema_version,
        "instagram_token": report.token.as_dict(),
        "last_webhook_received_at": report.last_webhook_at.isoformat()
        if report.last_webhook_at
        else None,
        "backlog": backlog,
    }
