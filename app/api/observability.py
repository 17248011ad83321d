"""ASGI middleware: a request id, one log line and the HTTP metrics for every request."""

import logging
import os
import re
import time

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app import metrics
from app.api.middleware import header
from app.logs import escape_controls, request_id

logger = logging.getLogger("app.access")

REQUEST_ID_HEADER = "X-Request-ID"
# A caller's request id is kept when it is a plain token (it ends up in logs and headers).
_VALID_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
# Probes and scrapes arrive every few seconds: their lines are DEBUG, the rest INFO.
QUIET_PATHS = frozenset({"/health", "/ready", "/metrics"})
UNMATCHED_ROUTE = "<unmatched>"


class RequestObservabilityMiddleware:
    """Take `X-Request-ID` (or make one), return it, log the request, count and time it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        offered = header(scope, b"x-request-id") or ""
        rid = offered if _VALID_REQUEST_ID.fullmatch(offered) else os.urandom(16).hex()
        token = request_id.set(rid)
        started = time.perf_counter()
        status = 500  # unless the app answers: an exception escaping it is a 500
        recorded = False

        def record() -> None:
            nonlocal recorded
            if not recorded:
                recorded = True
                self._record(scope, status=status, duration=time.perf_counter() - started, rid=rid)

        async def send_with_request_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                MutableHeaders(scope=message)[REQUEST_ID_HEADER] = rid
            elif message["type"] == "http.response.body" and not message.get("more_body"):
                record()  # before the last byte leaves: the line precedes the client's next step
            await send(message)

        try:
            await self.app(scope, receive, send_with_request_id)
        finally:
            record()
            request_id.reset(token)

    def _record(self, scope: Scope, *, status: int, duration: float, rid: str) -> None:
        method, path = scope["method"], scope["path"]
        route = getattr(scope.get("route"), "path", None) or UNMATCHED_ROUTE
        metrics.HTTP_REQUESTS.labels(method=method, route=route, status=str(status)).inc()
        metrics.HTTP_LATENCY.labels(method=method, route=route).observe(duration)
        # The path only (query strings carry ids, and the webhook handshake's verify token),
        # escaped: it arrives percent-decoded, so `%0A` would otherwise start a forged line.
        shown = escape_controls(path if len(path) <= 200 else path[:200] + "...")
        logger.log(
            logging.DEBUG if path in QUIET_PATHS else logging.INFO,
            "%s %s %s %.1fms",
            method,
            shown,
            status,
            duration * 1000,
            extra={
                "method": method,
                "path": shown,
                "status": status,
                "duration_ms": round(duration * 1000, 1),
                "request_id": rid,
            },
        )
