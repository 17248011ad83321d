"""Sending on the business's behalf: messages (`send`), their late recording when the
database was away (`recording`), reactions, sender actions, and the Graph `message` object
built from a v1 request (`payload`)."""

from app.services.sending.actions import SenderActionService
from app.services.sending.payload import graph_message
from app.services.sending.reactions import ReactionService
from app.services.sending.recording import (
    DeliveredSend,
    UnrecordedSends,
    UnrecordedSendsWorker,
    record_sent,
)
from app.services.sending.send import SendService

__all__ = [
    "DeliveredSend",
    "ReactionService",
    "SendService",
    "SenderActionService",
    "UnrecordedSends",
    "UnrecordedSendsWorker",
    "graph_message",
    "record_sent",
]
