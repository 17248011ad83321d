"""`/webhook`: Meta's subscription handshake (GET) and event deliveries (POST)."""

from typing import Annotated

from fastapi import APIRouter, Query, Response
from fastapi.responses import PlainTextResponse

from app.api.deps import WebhookCallDep, WebhookServiceDep
from app.schemas.errors import error_responses

router = APIRouter(tags=["webhook"])

SAMPLE_DELIVERY = {
    "object": "instagram",
    "entry": [
        {
            "time": 1738336944781,
            "id": "17841472223448520",
            "messaging": [
                {
                    "sender": {"id": "1667654223855126"},
                    "recipient": {"id": "17841472223448520"},
                    "timestamp": 1738336944379,
                    "message": {
                        "mid": "aWdfZAG1faXRlbToxOklHTWVzc2FnZA...ZDZD",
                        "text": "test message webhook",
                    },
                }
            ],
        }
    ],
}


@router.get(
    "/webhook",
    summary="Verify the webhook subscription",
    response_class=PlainTextResponse,
    responses={
        200: {"content": {"text/plain": {"example": "1158201444"}}, "description": "The challenge"},
        **error_responses(403, 422),
    },
)
@router.get("/webhook/", include_in_schema=False, response_class=PlainTextResponse)
def verify_webhook(
    service: WebhookServiceDep,
    mode: Annotated[str, Query(alias="hub.mode", examples=["subscribe"])],
    challenge: Annotated[
        str, Query(alias="hub.challenge", max_length=256, examples=["1158201444"])
    ],
    verify_token: Annotated[str, Query(alias="hub.verify_token", max_length=1024)],
) -> PlainTextResponse:
    """Meta's handshake: answer the `hub.challenge` as plain text when `hub.verify_token`
    equals INSTAGRAM_WEBHOOK_TOKEN and `hub.mode` is `subscribe`; 403 otherwise."""
    answer = service.verify_subscription(mode=mode, verify_token=verify_token, challenge=challenge)
    return PlainTextResponse(answer)


@router.post(
    "/webhook",
    summary="Receive Instagram events",
    openapi_extra={
        "parameters": [
            {
                "name": "X-Hub-Signature-256",
                "in": "header",
                "required": False,
                "description": "`sha256=` and the HMAC-SHA256 of the raw body with "
                "INSTAGRAM_APP_SECRET, in hex.",
                "schema": {"type": "string"},
            }
        ],
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"type": "object"}, "example": SAMPLE_DELIVERY}
            },
        },
    },
    responses={
        200: {
            "content": {"application/json": {"example": SAMPLE_DELIVERY}},
            "description": "Stored; the delivery is echoed back as the original service did",
        },
        **error_responses(400, 403, 413, 503),
    },
)
@router.post("/webhook/", include_in_schema=False)
def receive_webhook(call: WebhookCallDep) -> Response:
    """Verify `X-Hub-Signature-256` (HMAC-SHA256 of the raw body with INSTAGRAM_APP_SECRET),
    then store the raw delivery and every message in it in one transaction, idempotently by
    `mid`. Events of other kinds are kept in the raw delivery. 403 for a missing or wrong
    signature (nothing is stored), 400 for malformed JSON, 413 for an oversize body, 503
    when the database is down (Meta retries)."""
    call.service.receive(body=call.body, signature=call.signature)
    return Response(content=call.body, media_type="application/json")
