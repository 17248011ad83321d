"""/api/v1/webhook-endpoints: consumers' URLs that receive events, signed."""

from typing import Annotated

from fastapi import APIRouter, Path, Response, status

from app.api.deps import EndpointServiceDep
from app.api.responses import json_response
from app.schemas.errors import error_responses
from app.schemas.v1.endpoints import (
    DeliveryAttemptPage,
    PingRead,
    ReplayRead,
    ReplayRequest,
    SecretRead,
    WebhookEndpointCreate,
    WebhookEndpointCreated,
    WebhookEndpointRead,
    WebhookEndpointUpdate,
)

router = APIRouter(prefix="/webhook-endpoints", tags=["events"])

EndpointId = Annotated[
    str, Path(min_length=1, max_length=40, description="The endpoint's id (`we_…`).")
]


@router.post(
    "",
    summary="Create a webhook endpoint",
    status_code=status.HTTP_201_CREATED,
    response_model=WebhookEndpointCreated,
    responses=error_responses(400, 401, 413, 422, 503),
)
def create_endpoint(service: EndpointServiceDep, body: WebhookEndpointCreate) -> Response:
    """Deliver events written from now on to `url`, signed with the `secret` answered here
    (Standard Webhooks). `event_types` and `account_ids` filter (all when absent). The URL
    must be https at a public address (422 `invalid_url`), unless EVENTS_ALLOW_PRIVATE_URLS."""
    return json_response(service.create(body), status_code=201)


@router.get(
    "",
    summary="List webhook endpoints",
    response_model=list[WebhookEndpointRead],
    responses=error_responses(401, 422, 503),
)
def list_endpoints(service: EndpointServiceDep) -> Response:
    """Every endpoint, oldest first (without secrets)."""
    return json_response(service.list())


@router.get(
    "/{endpoint_id}",
    summary="Get a webhook endpoint",
    response_model=WebhookEndpointRead,
    responses=error_responses(401, 404, 422, 503),
)
def get_endpoint(service: EndpointServiceDep, endpoint_id: EndpointId) -> Response:
    """One endpoint; 404 `endpoint_not_found`."""
    return json_response(service.get(endpoint_id))


@router.patch(
    "/{endpoint_id}",
    summary="Change a webhook endpoint",
    response_model=WebhookEndpointRead,
    responses=error_responses(400, 401, 404, 413, 422, 503),
)
def update_endpoint(
    service: EndpointServiceDep, endpoint_id: EndpointId, body: WebhookEndpointUpdate
) -> Response:
    """Change `url`, `event_types`, `account_ids`, `description` or `enabled` (only the
    fields given). Enabling a disabled endpoint delivers from now on; `replay` the past."""
    return json_response(service.update(endpoint_id, body))


@router.delete(
    "/{endpoint_id}",
    summary="Delete a webhook endpoint",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=error_responses(401, 404, 422, 503),
)
def delete_endpoint(service: EndpointServiceDep, endpoint_id: EndpointId) -> Response:
    """The endpoint and its deliveries."""
    service.delete(endpoint_id)
    return Response(status_code=204)


@router.post(
    "/{endpoint_id}/rotate-secret",
    summary="Rotate the signing secret",
    response_model=SecretRead,
    responses=error_responses(401, 404, 422, 503),
)
def rotate_secret(service: EndpointServiceDep, endpoint_id: EndpointId) -> Response:
    """A new secret; for 24 hours deliveries carry signatures with both (space-separated)."""
    return json_response(service.rotate_secret(endpoint_id))


@router.post(
    "/{endpoint_id}/test",
    summary="Send a test event",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=PingRead,
    responses=error_responses(401, 404, 422, 503),
)
def test_endpoint(service: EndpointServiceDep, endpoint_id: EndpointId) -> Response:
    """A `ping` event, delivered (like any other) to this endpoint only."""
    return json_response(service.ping(endpoint_id), status_code=202)


@router.post(
    "/{endpoint_id}/replay",
    summary="Replay events",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=ReplayRead,
    responses=error_responses(400, 401, 404, 410, 413, 422, 503),
)
def replay(service: EndpointServiceDep, endpoint_id: EndpointId, body: ReplayRequest) -> Response:
    """Deliver the endpoint's events again from `since_seq` (in order, per conversation);
    410 `events_expired` when some were deleted already."""
    return json_response(service.replay(endpoint_id, since_seq=body.since_seq), status_code=202)


@router.get(
    "/{endpoint_id}/deliveries",
    summary="List delivery attempts",
    response_model=DeliveryAttemptPage,
    responses=error_responses(401, 404, 422, 503),
)
def list_deliveries(service: EndpointServiceDep, endpoint_id: EndpointId) -> Response:
    """The latest 100 attempts, newest first: each with its event, attempt number, status
    code, duration and error, and its delivery's status and next attempt."""
    return json_response(service.attempts(endpoint_id))
