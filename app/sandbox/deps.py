"""FastAPI dependencies shared by the sandbox routers."""

from typing import Annotated

from fastapi import Depends, Request

from app.sandbox.state import SandboxState


def get_sandbox_state(request: Request) -> SandboxState:
    """The state `create_sandbox_app` attached to the application."""
    state: SandboxState = request.app.state.sandbox
    return state


SandboxStateDep = Annotated[SandboxState, Depends(get_sandbox_state)]
