"""The sandbox's CDN: attachment files at `/ig_messaging_cdn/?asset_id=…&signature=…` (like
`lookaside.fbsbx.com`), and `/_sandbox/media` to make them expire, serve the CDN's text error
page instead, or grow past a size cap."""

import dataclasses
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, Field

from app.sandbox.control.errors import UnknownAssetError
from app.sandbox.deps import BaseUrlDep, SandboxStateDep
from app.sandbox.threads import CDN_PATH, AssetMode

cdn_router = APIRouter(tags=["sandbox CDN"])
control_router = APIRouter(prefix="/_sandbox", tags=["sandbox control"])


@cdn_router.api_route(CDN_PATH, methods=["GET", "HEAD"])
def cdn_file(
    state: SandboxStateDep,
    asset_id: Annotated[str, Query()] = "",
    signature: Annotated[str, Query()] = "",
) -> Response:
    """An attachment's bytes; 403 `URL signature expired` (text) once its URLs expired."""
    status, body, content_type = state.threads.served(asset_id=asset_id, signature=signature)
    return Response(body, status_code=status, media_type=content_type)


class AssetUpdate(BaseModel):
    """How the CDN serves a file from now on."""

    mode: AssetMode = Field(
        description="`expired`: the URLs issued so far answer 403 (the Conversations API "
        "issues fresh ones); `error_page`: 200 with the CDN's text error page; `live`."
    )
    size_bytes: int | None = Field(
        default=None, ge=1, le=512 * 1024 * 1024, description="Pad the file to this size."
    )


class AssetsCreate(BaseModel):
    """Files to put on the CDN at once (for benchmarks: attachments of made-up webhooks)."""

    type: str = Field(default="image", description="image, video, audio, file, story_mention…")
    count: int = Field(default=1, ge=1, le=10_000)


@control_router.post("/media", status_code=201)
def create_media(
    body: AssetsCreate, state: SandboxStateDep, base_url: BaseUrlDep
) -> dict[str, list[str]]:
    """New files on the CDN; their URLs."""
    return {
        "urls": [state.threads.new_asset(body.type, base_url=base_url) for _ in range(body.count)]
    }


@control_router.get("/media")
def list_media(state: SandboxStateDep) -> list[dict[str, Any]]:
    """Every file the CDN holds (without its signatures)."""
    return [
        {key: value for key, value in dataclasses.asdict(asset).items() if key != "signatures"}
        for asset in state.threads.assets()
    ]


@control_router.put("/media/{asset_id}")
def update_media(asset_id: str, body: AssetUpdate, state: SandboxStateDep) -> dict[str, Any]:
    """Expire a file's URLs, make the CDN answer its error page, or pad the file."""
    asset = state.threads.set_asset(asset_id, mode=body.mode, size_bytes=body.size_bytes)
    if asset is None:
        raise UnknownAssetError(f"no media file {asset_id}")
    return {
        "asset_id": asset.asset_id,
        "type": asset.type,
        "mode": asset.mode,
        "size_bytes": asset.size_bytes,
    }
