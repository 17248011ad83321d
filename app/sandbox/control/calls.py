"""`/_sandbox/sent` and `/_sandbox/calls`: what the service asked of the Graph API."""

import dataclasses
from typing import Any

from fastapi import APIRouter

from app.sandbox.deps import SandboxStateDep

router = APIRouter()


@router.get("/sent")
def list_sent(state: SandboxStateDep) -> list[dict[str, Any]]:
    """Send API calls received, with the answer given."""
    return [dataclasses.asdict(send) for send in state.sent()]


@router.get("/calls")
def list_calls(state: SandboxStateDep) -> list[dict[str, Any]]:
    """Every Graph call received: method, path, kind, status code."""
    return [dataclasses.asdict(call) for call in state.calls()]
