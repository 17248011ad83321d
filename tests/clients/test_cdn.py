"""The CDN client: the host allow-list on every redirect hop, the size counted while reading,
and the type of a file read from its bytes."""

import io
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from app.clients.cdn import CdnClient, DownloadRefused
from app.config import Settings
from app.sandbox.threads import FILES, JPEG_1X1, M4A, MP4, PDF, PNG_1X1
from app.services.media.sniff import sniff


class FakeCdn(BaseHTTPRequestHandler):
    """Redirects in and out of the allow-list, a file, and a stream with no length."""

    headers_seen: list[dict[str, str]] = []  # noqa: RUF012 (the requests' headers, in order)

    def do_HEAD(self) -> None:
        self.send_response(200 if self.path == "/file" else 404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_GET(self) -> None:
        FakeCdn.headers_seen.append(dict(self.headers))
        if self.path == "/file":
            self._answer(200, PNG_1X1, {"Content-Type": "image/png"})
        elif self.path == "/redirect-in":
            self._answer(302, b"", {"Location": "/file"})
        elif self.path == "/redirect-out":
            self._answer(302, b"", {"Location": "http://evil.example.com/file"})
        elif self.path == "/redirect-to-plain-meta":
            self._answer(302, b"", {"Location": "http://lookaside.fbsbx.com/file"})
        elif self.path == "/endless":
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for _ in range(10):  # 10 KiB, its size announced nowhere
                self.wfile.write(b"400\r\n" + b"\x00" * 1024 + b"\r\n")
            self.wfile.write(b"0\r\n\r\n")
        elif self.path == "/loop":
            self._answer(302, b"", {"Location": "/loop"})
        else:
            self._answer(404, b"not found", {"Content-Type": "text/plain"})

    def _answer(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        self.send_response(status)
        for name, value in {**headers, "Content-Length": str(len(body))}.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def cdn_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeCdn)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def cdn() -> Iterator[CdnClient]:
    client = CdnClient(Settings(_env_file=None, media_allowed_hosts="127.0.0.1"))
    yield client
    client.close()


def test_redirects_are_followed_inside_the_allow_list_only(cdn: CdnClient, cdn_url: str) -> None:
    into = io.BytesIO()
    downloaded = cdn.download(f"{cdn_url}/redirect-in", into=into, max_bytes=1000)
    assert (into.getvalue(), downloaded.size, downloaded.head) == (PNG_1X1, len(PNG_1X1), PNG_1X1)

    for path, host in (
        ("redirect-out", "evil.example.com"),
        ("redirect-to-plain-meta", "lookaside"),
    ):
        with pytest.raises(DownloadRefused) as refused:
            cdn.download(f"{cdn_url}/{path}", into=io.BytesIO(), max_bytes=1000)
        assert refused.value.state == "unsupported"
        assert host in refused.value.reason
    with pytest.raises(DownloadRefused, match="too many redirects"):
        cdn.download(f"{cdn_url}/loop", into=io.BytesIO(), max_bytes=1000)


def test_downloads_carry_no_credentials(
    cdn: CdnClient, cdn_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("INSTAGRAM_USER_TOKEN", "IGAA-never-sent")
    FakeCdn.headers_seen.clear()

    cdn.download(f"{cdn_url}/redirect-in", into=io.BytesIO(), max_bytes=1000)

    assert len(FakeCdn.headers_seen) == 2
    for headers in FakeCdn.headers_seen:
        assert not {"authorization", "cookie"} & {name.lower() for name in headers}
        assert "IGAA" not in str(headers)


def test_the_size_is_counted_while_reading(cdn: CdnClient, cdn_url: str) -> None:
    into = io.BytesIO()

    with pytest.raises(DownloadRefused) as refused:
        cdn.download(f"{cdn_url}/endless", into=into, max_bytes=4096)

    assert refused.value.state == "too_large"
    assert len(into.getvalue()) <= 4096


def test_meta_hosts_over_https_and_listed_hosts_are_allowed(cdn: CdnClient) -> None:
    assert cdn.allows("https://lookaside.fbsbx.com/ig_messaging_cdn/?asset_id=1")
    assert cdn.allows("https://scontent-ams2-1.cdninstagram.com/v/a.jpg")
    assert cdn.allows("https://video.xx.fbcdn.net/v/a.mp4")
    assert cdn.allows("http://127.0.0.1:9/a")
    assert not cdn.allows("http://lookaside.fbsbx.com/a")
    assert not cdn.allows("https://fbcdn.net.evil.com/a")
    assert not cdn.allows("https://cdninstagram.com/a")  # `*.` means a subdomain
    assert not cdn.allows("ftp://lookaside.fbsbx.com/a")


def test_a_head_check_tells_live_from_dead_and_never_calls_other_hosts(
    cdn: CdnClient, cdn_url: str
) -> None:
    assert cdn.check(f"{cdn_url}/file") == "live"
    assert cdn.check(f"{cdn_url}/gone") == "dead"
    assert cdn.check("https://example.com/a.png") == "unknown"
    assert cdn.check("http://127.0.0.1:9/nothing-listens") == "unknown"


@pytest.mark.parametrize(
    ("head", "kind"),
    [
        (PNG_1X1, "image/png"),
        (JPEG_1X1, "image/jpeg"),
        (b"GIF89a\x01\x00", "image/gif"),
        (b"RIFF\x00\x00\x00\x00WEBPVP8 ", "image/webp"),
        (MP4, "video/mp4"),
        (b"\x00\x00\x00\x14ftypqt  \x00\x00\x00\x00", "video/quicktime"),
        (M4A, "audio/mp4"),
        (b"ID3\x04\x00", "audio/mpeg"),
        (b"\xff\xf1\x50\x80", "audio/aac"),
        (b"OggS\x00\x02", "audio/ogg"),
        (b"RIFF\x00\x00\x00\x00WAVEfmt ", "audio/wav"),
        (PDF, "application/pdf"),
        (b"URL signature expired\n", None),
        (b"<!DOCTYPE html><html>", None),
        (b"MZ\x90\x00", None),
        (b"", None),
    ],
)
def test_the_type_is_read_from_the_first_bytes(head: bytes, kind: str | None) -> None:
    assert sniff(head) == kind


def test_every_file_of_the_sandbox_cdn_is_an_allowed_type() -> None:
    for content, content_type in FILES.values():
        assert sniff(content) == content_type
