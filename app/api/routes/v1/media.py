"""/api/v1/media/{id}: an attachment's bytes, wherever they are now."""

from typing import Annotated

from fastapi import APIRouter, Path, Response, status
from fastapi.responses import FileResponse, RedirectResponse

from app.api.deps import MediaServiceDep
from app.api.responses import json_response
from app.schemas.errors import error_responses
from app.services.media.serving import LocalFile, Pending, Redirect

router = APIRouter(prefix="/media", tags=["media"])


@router.get(
    "/{media_id}",
    summary="Get an attachment",
    status_code=status.HTTP_302_FOUND,
    response_class=Response,
    responses={
        200: {"description": "The archived bytes (MEDIA_ARCHIVE=local)"},
        202: {"description": "Being archived: ask again after `Retry-After` seconds"},
        302: {"description": "To the live CDN URL, or a presigned S3 URL"},
        **error_responses(401, 404, 410, 429, 502, 503, 504),
    },
)
def get_media(
    service: MediaServiceDep,
    media_id: Annotated[str, Path(max_length=20, description="The attachment's media `id`.")],
) -> Response:
    """An attachment by its media id: 302 to the live CDN URL (refreshed through Meta's
    Conversations API when it has expired and the message is among its conversation's 20
    newest), or the archived bytes when MEDIA_ARCHIVE keeps them; 202 with `Retry-After`
    while they are being archived; 410 `media_expired` when the URL is dead for good, 410
    `media_deleted` once the message was unsent."""
    served = service.get(media_id)
    if isinstance(served, Redirect):
        return RedirectResponse(served.url, status_code=status.HTTP_302_FOUND)
    if isinstance(served, LocalFile):
        return FileResponse(
            served.path,
            media_type=served.content_type,
            headers={"Cache-Control": "private, max-age=86400"},
        )
    assert isinstance(served, Pending)
    return _pending(served)


def _pending(served: Pending) -> Response:
    response = json_response(
        {"detail": "The attachment is being archived; retry shortly.", "code": "media_pending"},
        status_code=status.HTTP_202_ACCEPTED,
    )
    response.headers["Retry-After"] = str(served.retry_after)
    return response
