"""Schemas of the RESTful API at /api/v1: what it answers (`read`) and what it takes (`write`)."""

from app.schemas.v1.read import (
    ConversationPage,
    ConversationRead,
    CustomerRead,
    MessagePage,
    MessagePreview,
    MessageRead,
    ReactionRead,
    UserRead,
    columns_of,
    conversation_json,
    message_json,
    reaction_json,
)
from app.schemas.v1.write import (
    AttachmentCreate,
    ButtonTemplate,
    GenericTemplate,
    MessageCreate,
    QuickReplyCreate,
    ReactionCreate,
    SenderActionCreate,
)

__all__ = [
    "AttachmentCreate",
    "ButtonTemplate",
    "ConversationPage",
    "ConversationRead",
    "CustomerRead",
    "GenericTemplate",
    "MessageCreate",
    "MessagePage",
    "MessagePreview",
    "MessageRead",
    "QuickReplyCreate",
    "ReactionCreate",
    "ReactionRead",
    "SenderActionCreate",
    "UserRead",
    "columns_of",
    "conversation_json",
    "message_json",
    "reaction_json",
]
