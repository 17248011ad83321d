"""ASGI middleware that answers before any endpoint runs: the Host check, the API key, and
the body size limits. Each costs a header look-up; none reads a body it will refuse.
"""

import fnmatch
from urllib.parse import urlsplit

from starlette.datastructures import MutableHeaders
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.errors import error_body
from app.security import secrets_equal

WEBHOOK_PATHS = frozenset({"/webhook", "/webhook/"})
# Reachable without the API key: Meta's webhook, the probes, and the documentation pages.
PUBLIC_PATHS = WEBHOOK_PATHS | {
    "/health",
    "/ready",
    "/docs",
    "/docs/oauth2-redirect",
    "/redoc",
    "/openapi.json",
}
PUBLIC_PREFIXES = ("/static-offline-docs/",)
# Set in the request's state: whether it carried the API key (`/ready` says more when it did).
API_KEY_VALID = "api_key_valid"


def header(scope: Scope, name: bytes) -> str | None:
    """The first value of a request header (`name` lower case, as ASGI gives names), read
    straight from the scope: each middleware asks for one, so none builds a whole Headers."""
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


def is_public(path: str) -> bool:
    return path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES)


async def _refuse(
    scope: Scope,
    receive: Receive,
    send: Send,
    *,
    status: int,
    detail: str,
    code: str,
    headers: dict[str, str] | None = None,
) -> None:
    response = JSONResponse(error_body(detail, code), status_code=status, headers=headers)
    await response(scope, receive, send)


class HostCheckMiddleware:
    """With ALLOWED_HOSTS set, refuse requests for any other `Host` (400 `invalid_host`).

    Whatever the setting, redirects built from the `Host` header (a trailing slash) carry a
    path only: that header is the caller's to choose, so such a Location could send a client
    elsewhere. Redirects the service means to another host (media) are left alone."""

    def __init__(self, app: ASGIApp, *, allowed_hosts: list[str]) -> None:
        self.app = app
        self.allowed_hosts = allowed_hosts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        host = (header(scope, b"host") or "").lower()
        if self.allowed_hosts and not self._allowed(host):
            await _refuse(
                scope,
                receive,
                send,
                status=400,
                detail="This host is not served here (ALLOWED_HOSTS).",
                code="invalid_host",
            )
            return

        async def send_relative_redirects(message: Message) -> None:
            if message["type"] == "http.response.start" and 300 <= message["status"] < 400:
                headers = MutableHeaders(scope=message)
                location = urlsplit(headers.get("location", ""))
                # Only a Location built from the Host header; a redirect elsewhere on purpose
                # (media to its CDN URL) goes where the service said.
                if location.netloc and location.netloc.lower() == host:
                    path = location.path or "/"
                    headers["location"] = path + (f"?{location.query}" if location.query else "")
            await send(message)

        await self.app(scope, receive, send_relative_redirects)

    def _allowed(self, host_header: str) -> bool:
        host = host_header.strip().lower()
        if host.startswith("["):  # [::1]:8000
            host = host[1 : host.find("]")] if "]" in host else host
        elif host.count(":") == 1:
            host = host.split(":", 1)[0]
        return any(fnmatch.fnmatchcase(host, allowed) for allowed in self.allowed_hosts)


class ApiKeyMiddleware:
    """With API_KEY set, refuse every request but the public paths that lacks
    `Authorization: Bearer <API_KEY>`: 401 after a header check, whatever the body."""

    def __init__(self, app: ASGIApp, *, api_key: str | None) -> None:
        self.app = app
        self.api_key = api_key

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        valid = self.api_key is None or self._carries_key(scope)
        scope.setdefault("state", {})[API_KEY_VALID] = valid
        if not valid and not is_public(scope["path"]):
            await _refuse(
                scope,
                receive,
                send,
                status=401,
                detail="Missing or invalid API key: send `Authorization: Bearer <API_KEY>`.",
                code="unauthorized",
                headers={"WWW-Authenticate": "Bearer"},
            )
            return
        await self.app(scope, receive, send)

    def _carries_key(self, scope: Scope) -> bool:
        assert self.api_key is not None
        scheme, _, credentials = (header(scope, b"authorization") or "").partition(" ")
        return scheme.lower() == "bearer" and secrets_equal(credentials.strip(), self.api_key)


class BodySizeLimitMiddleware:
    """Refuse bodies over the limit with 413 before any endpoint sees them: `webhook_bytes`
    for Meta's deliveries, `api_bytes` for everything else.

    A declared Content-Length is checked up front; a chunked body is counted as it arrives.
    The body is buffered (endpoints read it whole anyway) and replayed to the app.
    """

    def __init__(self, app: ASGIApp, *, webhook_bytes: int, api_bytes: int) -> None:
        self.app = app
        self.webhook_bytes = webhook_bytes
        self.api_bytes = api_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["path"] in WEBHOOK_PATHS:
            limit, setting = self.webhook_bytes, "MAX_BODY_BYTES"
        else:
            limit, setting = self.api_bytes, "MAX_API_BODY_BYTES"
        too_large = f"The request body is larger than {limit} bytes ({setting})."
        declared = header(scope, b"content-length")
        if declared is not None:
            if not declared.isdigit():
                await _refuse(
                    scope,
                    receive,
                    send,
                    status=400,
                    detail="Invalid Content-Length.",
                    code="bad_request",
                )
                return
            if int(declared) > limit:
                await _refuse(
                    scope, receive, send, status=413, detail=too_large, code="payload_too_large"
                )
                return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                await _refuse(
                    scope, receive, send, status=413, detail=too_large, code="payload_too_large"
                )
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)
