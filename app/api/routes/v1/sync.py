"""/api/v1/accounts/{account_id}/sync: history backfill from the Conversations API."""

from typing import Annotated

from fastapi import APIRouter, Body, Path, Response, status

from app.api.deps import SyncServiceDep
from app.schemas.common import IG_ID_PATTERN
from app.schemas.errors import error_responses
from app.schemas.v1.sync import SyncCreate, SyncJobList, SyncJobRead

router = APIRouter(prefix="/accounts/{account_id}/sync", tags=["history"])

AccountId = Annotated[
    str,
    Path(pattern=IG_ID_PATTERN, description="The business account's IG_ID."),
]
JobId = Annotated[int, Path(ge=1, le=2**63 - 1, description="The backfill's id.")]


@router.post(
    "",
    summary="Start a history backfill",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=SyncJobRead,
    responses=error_responses(400, 401, 404, 413, 422, 503),
)
def start_sync(
    account_id: AccountId,
    service: SyncServiceDep,
    response: Response,
    request: Annotated[SyncCreate | None, Body(examples=[{"days": 30}, {}])] = None,
) -> SyncJobRead:
    """Import the account's conversations and messages from Meta's Conversations API, in
    the background (2 calls a second, Meta's limit). Each conversation's 20 newest messages
    come with their content; older ones as placeholders (`content_available: false`): Meta
    gives their id and time only. Idempotent with webhooks: nothing a webhook stored is
    overwritten. Follow the job at the `Location` this answers with."""
    job = service.start(account_id=account_id, days=request.days if request else None)
    response.headers["Location"] = f"/api/v1/accounts/{account_id}/sync/{job.id}"
    return job


@router.get(
    "",
    summary="List the account's backfills",
    response_model=SyncJobList,
    responses=error_responses(401, 404, 422, 503),
)
def list_syncs(account_id: AccountId, service: SyncServiceDep) -> SyncJobList:
    """The account's backfills, newest first (the last 20)."""
    return SyncJobList(data=service.jobs(account_id=account_id))


@router.get(
    "/{job_id}",
    summary="A backfill's progress",
    response_model=SyncJobRead,
    responses=error_responses(401, 404, 422, 503),
)
def read_sync(account_id: AccountId, job_id: JobId, service: SyncServiceDep) -> SyncJobRead:
    """Where a backfill stands: conversations listed and imported, messages stored."""
    return service.job(account_id=account_id, job_id=job_id)
