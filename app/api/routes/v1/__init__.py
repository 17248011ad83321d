"""The RESTful API: /api/v1."""

from fastapi import APIRouter

from app.api.routes.v1 import (
    conversations,
    events,
    media,
    messages,
    sync,
    users,
    webhook_endpoints,
)

router = APIRouter(prefix="/api/v1")
router.include_router(conversations.router)
router.include_router(messages.router)
router.include_router(media.router)
router.include_router(users.router)
router.include_router(sync.router)
router.include_router(events.router)
router.include_router(webhook_endpoints.router)
