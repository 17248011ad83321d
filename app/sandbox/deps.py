"""FastAPI dependencies shared by the sandbox routers."""

from typing import Annotated

from fastapi import Depends, Request

from app.sandbox.state import SandboxState


def get_sandbox_state(request: Request) -> SandboxState:
    """The state `create_sandbox_app` attached to the application."""
    state: SandboxState = request.app.state.sandbox
    return state


SandboxStateDep = Annotated[SandboxState, Depends(get_sandbox_state)]


def get_base_url(request: Request) -> str:
    """Where the service reaches the sandbox (SANDBOX_PUBLIC_URL, else the address this
    request came to): the CDN URLs it hands out point there."""
    state: SandboxState = request.app.state.sandbox
    configured = state.config.public_url
    return str(configured or request.base_url).rstrip("/")


BaseUrlDep = Annotated[str, Depends(get_base_url)]
