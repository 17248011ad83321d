"""The Send API's `message` object, built from a v1 send request, and what a row stores of it."""

from typing import Any

from app.schemas.v1.write import MessageCreate


def graph_message(request: MessageCreate) -> dict[str, Any]:
    """The `message` object Meta takes for this request (its `tag` travels apart)."""
    if request.text is not None:
        message: dict[str, Any] = {"text": request.text}
        if request.quick_replies:
            message["quick_replies"] = [
                {"content_type": "text", "title": reply.title, "payload": reply.payload}
                for reply in request.quick_replies
            ]
        return message
    if request.attachment is not None:
        attachment: dict[str, Any] = {"type": request.attachment.type}
        if request.attachment.url is not None:
            attachment["payload"] = {"url": request.attachment.url}
        return {"attachment": attachment}
    if request.images is not None:
        return {"attachments": [{"type": "image", "payload": {"url": u}} for u in request.images]}
    assert request.template is not None
    payload = request.template.model_dump(exclude_none=True)
    return {"attachment": {"type": "template", "payload": payload}}


def stored_attachments(message: dict[str, Any]) -> list[dict[str, Any]] | None:
    """The attachments of a Send API `message` object, as a messages row keeps them."""
    if "attachments" in message:
        return list(message["attachments"])
    if "attachment" in message:
        return [message["attachment"]]
    return None
