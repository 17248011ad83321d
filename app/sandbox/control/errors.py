"""How the control routes' errors look: the service's shape, `{"detail": ..., "code": ...}`."""

from fastapi import Request
from fastapi.responses import JSONResponse

from app.sandbox.state import CustomerExistsError, UnknownCustomerError


class UnplayableEventError(ValueError):
    """A well-formed request for an event the sandbox's state cannot produce."""


class UnknownAssetError(LookupError):
    """No media file on the sandbox's CDN has this asset id."""


def unknown_customer_handler(request: Request, error: Exception) -> JSONResponse:
    # (also an unknown media file)
    """404 in the service's error shape."""
    return JSONResponse({"detail": str(error), "code": "not_found"}, status_code=404)


def customer_exists_handler(request: Request, error: Exception) -> JSONResponse:
    """409 in the service's error shape."""
    return JSONResponse({"detail": str(error), "code": "conflict"}, status_code=409)


def unplayable_event_handler(request: Request, error: Exception) -> JSONResponse:
    """422 in the service's error shape."""
    return JSONResponse({"detail": str(error), "code": "validation_error"}, status_code=422)


EXCEPTION_HANDLERS = {
    UnknownCustomerError: unknown_customer_handler,
    UnknownAssetError: unknown_customer_handler,
    CustomerExistsError: customer_exists_handler,
    UnplayableEventError: unplayable_event_handler,
}
