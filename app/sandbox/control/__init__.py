"""`/_sandbox`: how tests and demos drive the sandbox (no token needed).

They create customers (`customers`), make them act like Instagram users, each act a signed
webhook to the service, or push arbitrary webhooks (`events`), change runtime knobs and
inject Graph faults (`settings`), and read back what the service called (`calls`).
"""

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from app.sandbox.control import calls, customers, events, settings
from app.sandbox.control.errors import EXCEPTION_HANDLERS, UnplayableEventError

PREFIX = "/_sandbox"

router = APIRouter(prefix=PREFIX, tags=["sandbox control"])
for part in (customers, events, calls, settings):
    router.include_router(part.router)


@router.api_route(
    "/{path:path}",
    methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
    include_in_schema=False,
)
def unknown_control_route(path: str) -> JSONResponse:
    """Keep typos under `/_sandbox` out of the Graph catch-all (which would demand a token)."""
    return JSONResponse(
        {"detail": f"no sandbox route {PREFIX}/{path}", "code": "not_found"}, status_code=404
    )


__all__ = ["EXCEPTION_HANDLERS", "PREFIX", "UnplayableEventError", "router"]
