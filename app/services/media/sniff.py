"""The type of a file by its first bytes (never by the CDN's Content-Type): the allow-list of
what the archive keeps. The CDN's error pages (text, HTML) match nothing and are refused."""


def sniff(head: bytes) -> str | None:
    """The content type of a file starting with `head`, if it is one the archive keeps."""
    for check in _CHECKS:
        found = check(head)
        if found:
            return found
    return None


def _image(head: bytes) -> str | None:
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    return None


# ISO base media (`ftyp` box at offset 4): the brand says which.
_QUICKTIME_BRANDS = {b"qt  "}
_AUDIO_BRANDS = {b"M4A ", b"M4B ", b"F4A "}


def _iso_media(head: bytes) -> str | None:
    if head[4:8] != b"ftyp":
        return None
    brand = head[8:12]
    if brand in _QUICKTIME_BRANDS:
        return "video/quicktime"
    if brand in _AUDIO_BRANDS:
        return "audio/mp4"
    return "video/mp4"


def _audio(head: bytes) -> str | None:
    if head.startswith(b"ID3") or head[:2] in (b"\xff\xfb", b"\xff\xf3", b"\xff\xf2"):
        return "audio/mpeg"
    if head[:2] in (b"\xff\xf1", b"\xff\xf9"):
        return "audio/aac"
    if head.startswith(b"OggS"):
        return "audio/ogg"
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return "audio/wav"
    return None


def _document(head: bytes) -> str | None:
    return "application/pdf" if head.startswith(b"%PDF-") else None


_CHECKS = (_image, _iso_media, _audio, _document)

# Extensions of the stored objects' keys, by type.
EXTENSIONS = {
    "image/jpeg": "jpg",
    "image/png": "png",
    "image/gif": "gif",
    "image/webp": "webp",
    "video/mp4": "mp4",
    "video/quicktime": "mov",
    "audio/mp4": "m4a",
    "audio/mpeg": "mp3",
    "audio/aac": "aac",
    "audio/ogg": "ogg",
    "audio/wav": "wav",
    "application/pdf": "pdf",
}
