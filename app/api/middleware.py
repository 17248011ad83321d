"""ASGI middleware: a hard limit on request body size, answered with our JSON error."""

from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.errors import error_body


class BodySizeLimitMiddleware:
    """Refuse bodies over `max_bytes` with 413 before any endpoint sees them.

    A declared Content-Length is checked up front; a chunked body is counted as it arrives.
    The body is buffered (endpoints read it whole anyway) and replayed to the app.
    """

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length")
        if declared is not None:
            if not declared.isdigit():
                await self._refuse(
                    scope, receive, send, 400, "Invalid Content-Length.", "bad_request"
                )
                return
            if int(declared) > self.max_bytes:
                await self._too_large(scope, receive, send)
                return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await self._too_large(scope, receive, send)
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

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._refuse(
            scope,
            receive,
            send,
            413,
            f"The request body is larger than {self.max_bytes} bytes (MAX_BODY_BYTES).",
            "payload_too_large",
        )

    async def _refuse(
        self, scope: Scope, receive: Receive, send: Send, status: int, detail: str, code: str
    ) -> None:
        response = JSONResponse(error_body(detail, code), status_code=status)
        await response(scope, receive, send)
