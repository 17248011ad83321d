"""`/health` (the process is up) and `/ready` (it can serve: database reachable, schema at head)."""

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from app.services.health import readiness

router = APIRouter(tags=["health"])


@router.get("/health", summary="Liveness")
def health() -> dict[str, str]:
    """Always `{"status": "ok"}` while the process serves requests."""
    return {"status": "ok"}


@router.get(
    "/ready",
    summary="Readiness",
    responses={503: {"description": "Not ready: see `checks`"}},
)
def ready(request: Request) -> JSONResponse:
    """200 when the database answers and its schema is at the newest migration, else 503."""
    report = readiness(request.app.state.engine)
    checks = {"database": report["database"], "schema": report["schema"]}
    if report["ready"]:
        return JSONResponse({"status": "ready", "checks": checks})
    return JSONResponse(
        {"status": "not_ready", "checks": checks, "detail": "Not ready.", "code": "not_ready"},
        status_code=503,
    )
