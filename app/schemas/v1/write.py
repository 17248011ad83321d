"""Request models of the RESTful API at /api/v1: what Meta would refuse is a 422 here."""

from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from app.schemas.common import SAMPLE_MID
from app.schemas.send import MessageText


def _https(url: str) -> str:
    # Meta fetches media and opens buttons itself: it needs a public https URL.
    if not url.startswith("https://") or len(url) <= len("https://"):
        raise ValueError("must be an https:// URL")
    return url


HttpsUrl = Annotated[str, Field(max_length=2048), AfterValidator(_https)]

MAX_QUICK_REPLIES = 13
MAX_IMAGES = 10
MAX_BUTTONS = 3
MAX_ELEMENTS = 10


class QuickReplyCreate(BaseModel):
    title: str = Field(min_length=1, max_length=20)
    payload: str = Field(min_length=1, max_length=1000)


class UrlButton(BaseModel):
    type: Literal["web_url"]
    title: str = Field(min_length=1, max_length=20)
    url: HttpsUrl


class PostbackButton(BaseModel):
    type: Literal["postback"]
    title: str = Field(min_length=1, max_length=20)
    payload: str = Field(min_length=1, max_length=1000)


Button = Annotated[UrlButton | PostbackButton, Field(discriminator="type")]


class DefaultAction(BaseModel):
    type: Literal["web_url"] = "web_url"
    url: HttpsUrl


class GenericElement(BaseModel):
    title: str = Field(min_length=1, max_length=80)
    subtitle: str | None = Field(default=None, max_length=80)
    image_url: HttpsUrl | None = None
    default_action: DefaultAction | None = None
    buttons: list[Button] | None = Field(default=None, min_length=1, max_length=MAX_BUTTONS)


class GenericTemplate(BaseModel):
    template_type: Literal["generic"]
    elements: list[GenericElement] = Field(min_length=1, max_length=MAX_ELEMENTS)


class ButtonTemplate(BaseModel):
    template_type: Literal["button"]
    text: str = Field(min_length=1, max_length=640)
    buttons: list[Button] = Field(min_length=1, max_length=MAX_BUTTONS)


Template = Annotated[GenericTemplate | ButtonTemplate, Field(discriminator="template_type")]


class AttachmentCreate(BaseModel):
    """A media file Meta fetches from `url`, or the heart sticker (no url)."""

    type: Literal["image", "video", "audio", "file", "like_heart"]
    url: HttpsUrl | None = None

    @model_validator(mode="after")
    def _url_matches_type(self) -> "AttachmentCreate":
        if self.type == "like_heart" and self.url is not None:
            raise ValueError("like_heart takes no url")
        if self.type != "like_heart" and self.url is None:
            raise ValueError(f"a {self.type} attachment needs a url")
        return self


class MessageCreate(BaseModel):
    """Exactly one of `text`, `attachment`, `images`, `template`; `quick_replies` go with text."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"text": "Which size?", "quick_replies": [{"title": "M", "payload": "SIZE_M"}]},
                {"attachment": {"type": "image", "url": "https://example.com/jacket.jpg"}},
                {"text": "Sorry for the wait!", "tag": "HUMAN_AGENT"},
            ]
        },
    )

    text: MessageText | None = Field(default=None, description="Up to 1000 UTF-8 bytes.")
    attachment: AttachmentCreate | None = None
    images: list[HttpsUrl] | None = Field(
        default=None, min_length=2, max_length=MAX_IMAGES, description="2 to 10 image URLs."
    )
    template: Template | None = None
    quick_replies: list[QuickReplyCreate] | None = Field(
        default=None, min_length=1, max_length=MAX_QUICK_REPLIES
    )
    tag: Literal["HUMAN_AGENT"] | None = Field(
        default=None,
        description="A human agent's reply 24 hours to 7 days after the customer's last message.",
    )

    @model_validator(mode="after")
    def _one_kind_of_content(self) -> "MessageCreate":
        given = [
            name
            for name in ("text", "attachment", "images", "template")
            if getattr(self, name) is not None
        ]
        if len(given) != 1:
            raise ValueError(
                "give exactly one of text, attachment, images, template"
                + (f" (got {', '.join(given)})" if given else "")
            )
        if self.quick_replies is not None and self.text is None:
            raise ValueError("quick_replies go with a text message")
        return self


class ReactionCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"mid": SAMPLE_MID, "reaction": "love"}]}
    )

    mid: str = Field(min_length=1, max_length=1024, description="The customer's message.")
    reaction: str = Field(
        default="love",
        min_length=1,
        max_length=16,
        description="`love` (Instagram's heart), another reaction name, or an emoji.",
    )


class SenderActionCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"action": "typing_on"}]}
    )

    action: Literal["typing_on", "typing_off", "mark_seen"]
