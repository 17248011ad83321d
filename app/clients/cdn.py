"""HTTP to Meta's CDN (attachment URLs): a HEAD to see whether a URL still works, and
streamed downloads for the media archive.

Never with the Instagram token (a session of its own, no credentials); only from Meta's CDN
hosts (plus MEDIA_ALLOWED_HOSTS, the sandbox's, which may be plain http), https otherwise;
redirects followed by hand, each hop checked against the same allow-list; the size counted
while reading, never taken from `Content-Length`.
"""

import fnmatch
import hashlib
import logging
from dataclasses import dataclass
from typing import IO, Literal
from urllib.parse import urljoin, urlsplit

import requests

from app.config import Settings
from app.logs import redact_urllib3_logs

logger = logging.getLogger(__name__)
redact_urllib3_logs()

META_CDN_HOSTS = ("lookaside.fbsbx.com", "*.fbcdn.net", "*.cdninstagram.com")
MAX_REDIRECTS = 5
CHUNK = 64 * 1024
# Bytes kept from the start of a download, for the type check.
HEAD_BYTES = 512
# The CDN says the URL is gone (signature expired, media deleted): no use trying again.
GONE = frozenset({403, 404, 410})
TRANSIENT = frozenset({408, 425, 429})

LinkStatus = Literal["live", "dead", "unknown"]


class DownloadRefused(Exception):
    """A download that must not be retried; `state` says why (`too_large`, `unsupported`,
    `expired`, `failed`)."""

    def __init__(self, state: str, reason: str) -> None:
        super().__init__(reason)
        self.state = state
        self.reason = reason


class DownloadFailed(Exception):
    """A download that may work later (a timeout, 5xx, 429)."""


@dataclass(frozen=True)
class Downloaded:
    size: int
    sha256: str
    head: bytes  # the first bytes, to check the type by
    content_type: str | None  # what the CDN said (not trusted)


class CdnClient:
    """HEAD checks and capped, streamed downloads of attachment URLs."""

    def __init__(self, settings: Settings) -> None:
        self._extra_hosts = settings.media_allowed_host_list
        self._timeout = (3.05, 30.0)
        # A link check runs in a request: it must not hold the client long.
        self._check_timeout = (3.05, 5.0)
        self._session = requests.Session()
        self._session.trust_env = False  # no ~/.netrc credentials, no proxies from env

    def close(self) -> None:
        self._session.close()

    def allows(self, url: str) -> bool:
        """Whether the service may fetch `url`: Meta's CDN over https, or a
        MEDIA_ALLOWED_HOSTS host (http or https)."""
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        if parts.scheme not in ("https", "http") or not host:
            return False
        if _matches(host, self._extra_hosts):
            return True
        return parts.scheme == "https" and _matches(host, META_CDN_HOSTS)

    def check(self, url: str) -> LinkStatus:
        """Whether the URL still serves its media (a HEAD, redirects not followed):
        `dead` when the CDN says it is gone, `unknown` when it could not tell (or the URL
        is not one the service fetches: it never calls hosts outside the allow-list)."""
        if not self.allows(url):
            return "unknown"
        try:
            response = self._session.head(url, timeout=self._check_timeout, allow_redirects=False)
        except requests.RequestException as exc:
            logger.info("media link check failed: %s", type(exc).__name__)
            return "unknown"
        if response.status_code in GONE:
            return "dead"
        return "live" if response.status_code < 400 else "unknown"

    def download(self, url: str, *, into: IO[bytes], max_bytes: int) -> Downloaded:
        """Stream `url` into `into`, at most `max_bytes`; raises DownloadRefused or
        DownloadFailed."""
        response = self._open(url)
        with response:
            digest = hashlib.sha256()
            head = b""
            size = 0
            try:
                for chunk in response.iter_content(CHUNK):
                    size += len(chunk)
                    if size > max_bytes:
                        raise DownloadRefused("too_large", f"more than {max_bytes} bytes")
                    if len(head) < HEAD_BYTES:
                        head += chunk[: HEAD_BYTES - len(head)]
                    digest.update(chunk)
                    into.write(chunk)
            except requests.RequestException as exc:
                raise DownloadFailed(f"read failed: {type(exc).__name__}") from None
        return Downloaded(
            size=size,
            sha256=digest.hexdigest(),
            head=head,
            content_type=response.headers.get("content-type"),
        )

    def _open(self, url: str) -> requests.Response:
        """The response with the media's body (redirects followed inside the allow-list)."""
        for _ in range(MAX_REDIRECTS + 1):
            if not self.allows(url):
                raise DownloadRefused("unsupported", f"host not allowed: {urlsplit(url).hostname}")
            try:
                response = self._session.get(
                    url, timeout=self._timeout, stream=True, allow_redirects=False
                )
            except requests.RequestException as exc:
                raise DownloadFailed(f"unreachable: {type(exc).__name__}") from None
            if response.is_redirect:
                location = response.headers.get("location", "")
                response.close()
                url = urljoin(url, location)
                continue
            if response.ok:
                return response
            response.close()
            status = response.status_code
            if status in GONE:
                raise DownloadRefused("expired", f"the CDN answered {status}")
            if status in TRANSIENT or status >= 500:
                raise DownloadFailed(f"the CDN answered {status}")
            raise DownloadRefused("failed", f"the CDN answered {status}")
        raise DownloadRefused("failed", "too many redirects")


def _matches(host: str, patterns: tuple[str, ...] | list[str]) -> bool:
    # `*.example.com` matches subdomains only, as in ALLOWED_HOSTS.
    return any(fnmatch.fnmatchcase(host, pattern) for pattern in patterns)
