"""`/_sandbox/config`, `/_sandbox/faults` and `/_sandbox/reset`: how the sandbox behaves —
runtime knobs, Graph faults injected on purpose, and a fresh start."""

import dataclasses
from typing import Any

from fastapi import APIRouter
from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field, model_validator

from app.sandbox.config import EchoMode
from app.sandbox.deps import SandboxStateDep
from app.sandbox.state import Fault, FaultKind

router = APIRouter()


class SettingsUpdate(BaseModel):
    """Runtime knobs to change; omitted ones stay."""

    echo_mode: EchoMode | None = None
    latency_ms: int | None = Field(default=None, ge=0)
    webhook_url: AnyHttpUrl | None = None
    conversations_rate_limit: bool | None = None


class FaultError(BaseModel):
    """A Meta error body (without `fbtrace_id`, which is added); extra keys pass through."""

    model_config = ConfigDict(extra="allow")

    message: str
    type: str = "OAuthException"
    code: int
    error_subcode: int | None = None


class FaultCreate(BaseModel):
    """Misbehave on the next `times` Graph calls of `kind`: wait, then maybe fail, or answer
    `body` instead of the real answer."""

    kind: FaultKind = "any"
    status: int = Field(default=400, ge=200, le=599)
    error: FaultError | None = None
    body: dict[str, Any] | None = Field(
        default=None,
        description="The JSON to answer instead (e.g. a 200 without `message_id`)",
        examples=[{"recipient_id": "1187429836452190"}],
    )
    delay_seconds: float = Field(default=0, ge=0, le=300)
    times: int = Field(default=1, ge=1)
    account_id: str | None = Field(
        default=None,
        pattern=r"^\d+$",
        description="Only calls made with this business account's token (default: any)",
    )

    @model_validator(mode="after")
    def success_has_a_body(self) -> "FaultCreate":
        if self.status < 400 and self.body is None:
            raise ValueError("a fault answering below 400 needs a body")
        return self


@router.get("/config")
def read_settings(state: SandboxStateDep) -> dict[str, Any]:
    """Current runtime knobs."""
    return state.settings()


@router.put("/config")
def update_settings(body: SettingsUpdate, state: SandboxStateDep) -> dict[str, Any]:
    """Change echo mode, latency, webhook URL or the Conversations API's rate limit while
    running."""
    return state.update_settings(
        echo_mode=body.echo_mode,
        latency_ms=body.latency_ms,
        webhook_url=str(body.webhook_url) if body.webhook_url else None,
        conversations_rate_limit=body.conversations_rate_limit,
    )


@router.post("/faults", status_code=201)
def add_fault(body: FaultCreate, state: SandboxStateDep) -> list[dict[str, Any]]:
    """Queue a fault for upcoming Graph calls; returns the pending faults."""
    error = body.error.model_dump(exclude_none=True) if body.error else None
    state.add_fault(
        Fault(
            kind=body.kind,
            times=body.times,
            status_code=body.status,
            error=error,
            delay_seconds=body.delay_seconds,
            body=body.body,
            account_id=body.account_id,
        )
    )
    return [dataclasses.asdict(fault) for fault in state.faults()]


@router.get("/faults")
def list_faults(state: SandboxStateDep) -> list[dict[str, Any]]:
    """Faults still waiting to fire."""
    return [dataclasses.asdict(fault) for fault in state.faults()]


@router.delete("/faults")
def clear_faults(state: SandboxStateDep) -> list[dict[str, Any]]:
    """Drop every pending fault, and answer the calls a fault's delay is holding now."""
    state.clear_faults()
    return []


@router.post("/reset")
def reset(state: SandboxStateDep) -> dict[str, Any]:
    """Back to a fresh start: no customers, calls, sends or faults (calls a fault's delay
    holds are answered now); knobs from the config."""
    state.reset()
    return state.settings()
