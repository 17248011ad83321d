"""Assemble the sandbox application: Graph routes plus the `/_sandbox` control routes."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from app.sandbox import accounts, cdn, control, conversations, graph
from app.sandbox.config import SandboxConfig
from app.sandbox.state import SandboxState


def create_sandbox_app(config: SandboxConfig | None = None) -> FastAPI:
    """A fresh sandbox; its state is `app.state.sandbox`. Config defaults to env/`.env`."""
    state = SandboxState(config or SandboxConfig())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        state.close()

    app = FastAPI(
        title="Instagram Graph API sandbox",
        description="Emulates graph.instagram.com for insta-service and delivers signed webhooks.",
        lifespan=lifespan,
    )
    app.state.sandbox = state
    # Control routes first: the Graph router ends in a catch-all for every other path.
    app.include_router(accounts.control_router)
    app.include_router(cdn.control_router)
    app.include_router(control.router)
    app.include_router(cdn.cdn_router)
    app.include_router(accounts.graph_router)
    app.include_router(conversations.router)
    app.include_router(graph.router)
    for error_class, handler in control.EXCEPTION_HANDLERS.items():
        app.add_exception_handler(error_class, handler)
    return app
