"""What the sandbox remembers of each conversation, for the Conversations API: every message
the customer wrote or the business sent, and the media files of their attachments, served at
CDN-like URLs of the sandbox's own (`/ig_messaging_cdn/?asset_id=…&signature=…`) that can be
made to expire, like Meta's.

Thread-safe: one lock; readers get copies.
"""

import base64
import dataclasses
import secrets
import threading
from dataclasses import dataclass, field
from typing import Any, Literal

from app.sandbox.ids import new_media_id

CDN_PATH = "/ig_messaging_cdn/"
# Meta gives content only for a conversation's 20 newest messages.
NEWEST_WITH_CONTENT = 20

AssetMode = Literal["live", "expired", "error_page"]


# Small real files, one per kind of attachment (the download worker checks bytes, not names).
PNG_1X1 = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
)
JPEG_1X1 = base64.b64decode(
    "/9j/4AAQSkZJRgABAQEASABIAAD/2wBDAP//////////////////////////////////////////////////////"
    "////////////////////////////////wgALCAABAAEBAREA/8QAFBABAAAAAAAAAAAAAAAAAAAAAP/aAAgBAQAB"
    "PxA="
)
# An ISO base media file: `ftyp` (brand isom/mp42) then an empty `mdat`.
MP4 = b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isommp42" + b"\x00\x00\x00\x08mdat"
M4A = b"\x00\x00\x00\x18ftypM4A \x00\x00\x02\x00M4A isom" + b"\x00\x00\x00\x08mdat"
PDF = (
    b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n"
    b"2 0 obj<</Type/Pages/Kids[3 0 R]/Count 1>>endobj\n"
    b"3 0 obj<</Type/Page/Parent 2 0 R/MediaBox[0 0 72 72]>>endobj\n"
    b"trailer<</Root 1 0 R>>\n%%EOF\n"
)
ERROR_PAGE = b"Sorry, this content isn't available right now\n"
EXPIRED_PAGE = b"URL signature expired\n"

# What each attachment type's file is: (bytes, content type).
FILES: dict[str, tuple[bytes, str]] = {
    "image": (PNG_1X1, "image/png"),
    "story_mention": (JPEG_1X1, "image/jpeg"),
    "share": (JPEG_1X1, "image/jpeg"),
    "ig_post": (JPEG_1X1, "image/jpeg"),
    "video": (MP4, "video/mp4"),
    "ig_reel": (MP4, "video/mp4"),
    "audio": (M4A, "audio/mp4"),
    "file": (PDF, "application/pdf"),
}
# Where a Graph message node puts each type's URL.
NODE_URL_FIELD = {"video": "video_data", "ig_reel": "video_data", "audio": "file_url"}


@dataclass
class Asset:
    """A media file on the sandbox's CDN; URLs with one of `signatures` reach it."""

    asset_id: str
    type: str
    signatures: set[str] = field(default_factory=set)
    mode: AssetMode = "live"
    size_bytes: int | None = None  # padded to this size (zeros after the file)


@dataclass
class ThreadMessage:
    """One message of a conversation, as the Conversations API tells it."""

    mid: str
    created_ms: int
    from_id: str
    to_id: str
    text: str | None
    # Attachments as the webhook carried them, plus the asset each URL points at.
    attachments: list[dict[str, Any]] | None
    asset_ids: list[str | None]


def conversation_id(*, account_id: str, customer_id: str) -> str:
    """An opaque conversation id shaped like Meta's (`aWdfZAG06MTpJR01lc3NhZA2VUaHJlYWQ6…`)."""
    raw = base64.b64encode(f"ig:1:IGMessageThread:{account_id}:{customer_id}".encode()).decode()
    return raw.replace("Z", "ZA").replace("=", "ZD")


class Threads:
    """Conversations' messages and their media files."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._messages: dict[str, list[ThreadMessage]] = {}  # by customer, oldest first
        self._assets: dict[str, Asset] = {}
        self._by_signature: dict[str, str] = {}

    def reset(self) -> None:
        with self._lock:
            self._messages.clear()
            self._assets.clear()
            self._by_signature.clear()

    # Media files

    def new_asset(self, attachment_type: str, *, base_url: str) -> str:
        """A new file for an attachment of this type; its URL."""
        asset = Asset(asset_id=new_media_id(), type=attachment_type)
        with self._lock:
            self._assets[asset.asset_id] = asset
            return self._sign(asset, base_url=base_url)

    def fresh_url(self, asset_id: str, *, base_url: str) -> str | None:
        """A new working URL for the file (the Conversations API re-issues them)."""
        with self._lock:
            asset = self._assets.get(asset_id)
            if asset is None:
                return None
            if asset.mode == "expired":
                asset.mode = "live"
            return self._sign(asset, base_url=base_url)

    def _sign(self, asset: Asset, *, base_url: str) -> str:
        signature = secrets.token_urlsafe(48)
        asset.signatures.add(signature)
        self._by_signature[signature] = asset.asset_id
        return f"{base_url}{CDN_PATH}?asset_id={asset.asset_id}&signature={signature}"

    def set_asset(self, asset_id: str, *, mode: AssetMode, size_bytes: int | None) -> Asset | None:
        """Expire a file's URLs (`expired`: those issued so far stop working), serve an
        error page for it, or bring it back; pad it to `size_bytes`."""
        with self._lock:
            asset = self._assets.get(asset_id)
            if asset is None:
                return None
            if mode == "expired":
                for signature in asset.signatures:
                    self._by_signature.pop(signature, None)
                asset.signatures.clear()
            asset.mode = mode
            asset.size_bytes = size_bytes
            return dataclasses.replace(asset, signatures=set(asset.signatures))

    def assets(self) -> list[Asset]:
        with self._lock:
            return [
                dataclasses.replace(a, signatures=set(a.signatures)) for a in self._assets.values()
            ]

    def served(self, *, asset_id: str, signature: str) -> tuple[int, bytes, str]:
        """What the CDN answers for a URL: (status, body, content type)."""
        with self._lock:
            asset = self._assets.get(asset_id)
            if asset is None or self._by_signature.get(signature) != asset_id:
                return 403, EXPIRED_PAGE, "text/plain"
            if asset.mode == "error_page":
                return 200, ERROR_PAGE, "text/plain"
            body, content_type = FILES.get(asset.type, (JPEG_1X1, "image/jpeg"))
            if asset.size_bytes and asset.size_bytes > len(body):
                body += b"\0" * (asset.size_bytes - len(body))
            return 200, body, content_type

    # Messages

    def record(self, *, customer_id: str, message: ThreadMessage) -> None:
        """Remember a message of the conversation with this customer."""
        with self._lock:
            thread = self._messages.setdefault(customer_id, [])
            thread.append(message)
            thread.sort(key=lambda m: m.created_ms)

    def remove(self, mid: str) -> None:
        """An unsent message is gone from the conversation."""
        with self._lock:
            for thread in self._messages.values():
                thread[:] = [m for m in thread if m.mid != mid]

    def customer_of(self, conversation: str, *, account_id: str) -> str | None:
        """The customer of a conversation id (None: no such conversation)."""
        for customer in self.customers():
            if conversation_id(account_id=account_id, customer_id=customer) == conversation:
                return customer
        return None

    def customers(self) -> list[str]:
        with self._lock:
            return [customer for customer, thread in self._messages.items() if thread]

    def newest_first(self, customer_id: str) -> list[ThreadMessage]:
        with self._lock:
            return [dataclasses.replace(m) for m in reversed(self._messages.get(customer_id, []))]

    def find(self, mid: str) -> tuple[str, ThreadMessage, int] | None:
        """The message's customer, the message, and how many of the thread are newer."""
        with self._lock:
            for customer, thread in self._messages.items():
                for index, message in enumerate(thread):
                    if message.mid == mid:
                        return customer, dataclasses.replace(message), len(thread) - 1 - index
            return None
