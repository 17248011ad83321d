"""All HTTP calls to Meta's Instagram Graph API (graph.instagram.com, or the sandbox).

One pooled `requests.Session`; the token travels in the `Authorization` header (only the token
refresh puts it in the query string, as Meta documents it, and such URLs are never logged);
every call has a (connect, read) timeout; GETs are retried with backoff on transient failures,
a POST never is (Meta may have delivered a message even when it answered with an error).

The token comes from a `TokenProvider` (app/services/tokens.py keeps the refreshed one in the
database), which also hears whether Meta accepted it: code 190 marks it for re-authentication.
"""

import json
import logging
import os
import re
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from app import metrics
from app.config import Settings
from app.errors import AppError
from app.logs import redact_urllib3_logs

logger = logging.getLogger(__name__)
redact_urllib3_logs()

PROFILE_FIELDS = (
    "name,username,profile_pic,follower_count,is_user_follow_business,"
    "is_business_follow_user,is_verified_user"
)
ME_FIELDS = "user_id,username,name,account_type,profile_picture_url"

TOKEN_INVALID = 190
CONSENT_REQUIRED = 230
INVALID_PARAMETER = 100
PERMISSION_DENIED = 10
OUTSIDE_WINDOW_SUBCODES = frozenset({2534022, 2018278})
RECIPIENT_NOT_FOUND_SUBCODES = frozenset({2534014, 2018001})
USER_UNAVAILABLE = 551
RATE_LIMIT_CODES = frozenset({4, 17, 32, 341, 613, 80002})
TRANSIENT_CODES = frozenset({1, 2})
DEFAULT_RETRY_AFTER_SECONDS = 60

_NUMERIC_ID = re.compile(r"^[0-9]{1,64}$")


@dataclass(frozen=True)
class GraphErrorDetails:
    """What Meta said in its error envelope."""

    http_status: int
    code: int | None
    subcode: int | None
    message: str
    error_type: str | None
    fbtrace_id: str | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "error_subcode": self.subcode,
            "message": self.message,
            "type": self.error_type,
            "fbtrace_id": self.fbtrace_id,
            "http_status": self.http_status,
        }


class InstagramError(AppError):
    """A Graph API call that did not succeed; `graph` holds Meta's error when it sent one."""

    status_code = 502
    code = "instagram_error"
    transient = False

    def __init__(
        self,
        message: str,
        *,
        graph: GraphErrorDetails | None = None,
        status_code: int | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
        transient: bool | None = None,
    ) -> None:
        super().__init__(message, status_code=status_code, code=code, headers=headers)
        self.graph = graph
        if transient is not None:
            self.transient = transient

    @property
    def graph_code(self) -> int | None:
        return self.graph.code if self.graph else None

    def as_record(self) -> dict[str, Any]:
        """A JSON-able description for storage next to a failed message."""
        record: dict[str, Any] = {
            "code": self.code,
            "detail": self.message,
            "status": self.status_code,
        }
        if self.graph:
            record["graph"] = self.graph.as_dict()
        return record


class InstagramNotConfiguredError(InstagramError):
    status_code = 503
    code = "instagram_not_configured"


class InstagramUnreachableError(InstagramError):
    status_code = 503
    code = "instagram_unreachable"
    transient = True


class InstagramBusyError(InstagramError):
    status_code = 503
    code = "instagram_busy"
    transient = True


class InstagramTimeoutError(InstagramError):
    status_code = 504
    code = "instagram_timeout"
    transient = True


def _error_from_envelope(details: GraphErrorDetails, retry_after: int) -> InstagramError:
    """Map Meta's (code, subcode) to the answer our clients get."""
    code, subcode = details.code, details.subcode
    said = f"Instagram API error {code}" + (f"/{subcode}" if subcode else "")
    said += f": {details.message}"
    if code == TOKEN_INVALID:
        return InstagramError(
            f"{said} The access token is invalid or expired: generate a new one and set "
            "INSTAGRAM_USER_TOKEN.",
            graph=details,
            status_code=502,
            code="instagram_token_invalid",
        )
    if code == PERMISSION_DENIED and subcode in OUTSIDE_WINDOW_SUBCODES:
        return InstagramError(
            f"{said} The customer's last message is older than the messaging window "
            "(24 hours; 7 days with the HUMAN_AGENT tag).",
            graph=details,
            status_code=409,
            code="outside_window",
        )
    if subcode in RECIPIENT_NOT_FOUND_SUBCODES or code == USER_UNAVAILABLE:
        return InstagramError(said, graph=details, status_code=404, code="recipient_not_found")
    if code == CONSENT_REQUIRED:
        return InstagramError(said, graph=details, status_code=404, code="consent_required")
    if code in RATE_LIMIT_CODES:
        return InstagramError(
            said,
            graph=details,
            status_code=429,
            code="instagram_rate_limited",
            headers={"Retry-After": str(retry_after)},
            transient=True,
        )
    if code in TRANSIENT_CODES or details.http_status >= 500:
        return InstagramError(
            said, graph=details, status_code=503, code="instagram_unavailable", transient=True
        )
    return InstagramError(said, graph=details, status_code=502, code="instagram_error")


def _retry_after_seconds(response: requests.Response) -> int:
    header = response.headers.get("Retry-After")
    if header and header.isdigit():
        return int(header)
    usage = response.headers.get("X-Business-Use-Case-Usage")
    if usage:
        try:
            minutes = max(
                int(entry.get("estimated_time_to_regain_access") or 0)
                for entries in json.loads(usage).values()
                for entry in entries
            )
        except (ValueError, TypeError, AttributeError):
            minutes = 0
        if minutes > 0:
            return minutes * 60
    return DEFAULT_RETRY_AFTER_SECONDS


def _parse_error(response: requests.Response) -> GraphErrorDetails:
    try:
        error = response.json()["error"]
        if not isinstance(error, dict):
            raise TypeError
    except (ValueError, KeyError, TypeError):
        return GraphErrorDetails(
            http_status=response.status_code,
            code=None,
            subcode=None,
            message=f"HTTP {response.status_code} without a Graph error body",
            error_type=None,
            fbtrace_id=None,
        )

    def as_int(value: object) -> int | None:
        try:
            return int(value)  # type: ignore[call-overload]
        except (TypeError, ValueError):
            return None

    return GraphErrorDetails(
        http_status=response.status_code,
        code=as_int(error.get("code")),
        subcode=as_int(error.get("error_subcode")),
        message=str(error.get("message") or "no message"),
        error_type=error.get("type"),
        fbtrace_id=error.get("fbtrace_id"),
    )


class TokenProvider(Protocol):
    """Where the client gets its access token, and whom it tells how Meta took it."""

    def current(self) -> str | None:
        """The token to call with; None when no token is configured."""
        ...

    def rejected(self, error: GraphErrorDetails) -> None:
        """Meta answered code 190: the token is invalid or expired."""
        ...

    def accepted(self) -> None:
        """A call with the token succeeded."""
        ...


class ConfiguredToken:
    """INSTAGRAM_USER_TOKEN as it is (for tools and tests that need no token lifecycle)."""

    def __init__(self, settings: Settings) -> None:
        self._token = settings.instagram_user_token

    def current(self) -> str | None:
        return self._token.get_secret_value() if self._token else None

    def rejected(self, error: GraphErrorDetails) -> None:
        pass

    def accepted(self) -> None:
        pass


class InstagramClient:
    """The Graph API calls the service makes."""

    def __init__(self, settings: Settings, *, token: TokenProvider | None = None) -> None:
        self._token: TokenProvider = token or ConfiguredToken(settings)
        self._graph_url = settings.instagram_graph_url
        self._base_url = settings.graph_base_url
        self._send_url = settings.send_message_url
        self._timeout = (settings.instagram_connect_timeout, settings.instagram_read_timeout)
        self._slots = threading.BoundedSemaphore(settings.instagram_max_concurrency)
        self._queue_timeout = settings.instagram_queue_timeout
        retries = Retry(
            total=settings.instagram_get_retries,
            backoff_factor=0.5,
            status_forcelist=(500, 502, 503, 504),
            # Read errors and error statuses are retried for GET only. Connection failures
            # are retried for any method: the request never reached Meta.
            allowed_methods=frozenset({"GET"}),
            raise_on_status=False,
            respect_retry_after_header=False,
        )
        adapter = HTTPAdapter(
            pool_connections=4, pool_maxsize=settings.instagram_pool_size, max_retries=retries
        )
        self._session = requests.Session()
        self._session.mount("https://", adapter)
        self._session.mount("http://", adapter)
        # requests reads the proxy and CA variables (and ~/.netrc) on every call when
        # trust_env is on; the service reads them once per host instead.
        self._session.trust_env = False
        self._session.verify = (
            os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
        )
        self._proxies: dict[str, dict[str, str]] = {}

    def close(self) -> None:
        self._session.close()

    def _proxies_for(self, url: str) -> dict[str, str]:
        """The proxies the environment names for this URL's host (HTTPS_PROXY, NO_PROXY…)."""
        parts = urlsplit(url)
        origin = f"{parts.scheme}://{parts.netloc}"
        proxies = self._proxies.get(origin)
        if proxies is None:
            proxies = self._proxies[origin] = requests.utils.get_environ_proxies(origin)
        return proxies

    def get_me(self) -> dict[str, Any]:
        """The account the token belongs to: `user_id` is the IG_ID webhooks carry."""
        data = self._request("GET", f"{self._base_url}/me", params={"fields": ME_FIELDS})
        # Meta's docs draw /me wrapped in {"data": [...]}; real answers are flat.
        if isinstance(data.get("data"), list) and data["data"]:
            data = data["data"][0]
        return data

    def refresh_access_token(self) -> dict[str, Any]:
        """Exchange the current long-lived token for a new one (`ig_refresh_token`): returns
        `{access_token, token_type, expires_in}`. Meta refreshes tokens at least a day old."""
        answer = self._request(
            "GET",
            f"{self._graph_url}/refresh_access_token",
            params={"grant_type": "ig_refresh_token"},
            token_in_query=True,
        )
        if not isinstance(answer.get("access_token"), str) or not answer["access_token"]:
            raise InstagramError("The token refresh answered without an access_token.")
        return answer

    def subscribe_webhooks(self, fields: Sequence[str]) -> dict[str, Any]:
        """Enable webhook delivery of `fields` for the account (`POST /me/subscribed_apps`)."""
        return self._request(
            "POST",
            f"{self._base_url}/me/subscribed_apps",
            params={"subscribed_fields": ",".join(fields)},
        )

    def subscribed_webhook_fields(self) -> list[str]:
        """The webhook fields the account is subscribed to (`GET /me/subscribed_apps`)."""
        answer = self._request("GET", f"{self._base_url}/me/subscribed_apps")
        apps = answer.get("data") if isinstance(answer.get("data"), list) else []
        fields: dict[str, None] = {}
        for app in apps:
            if isinstance(app, dict) and isinstance(app.get("subscribed_fields"), list):
                fields.update(dict.fromkeys(str(field) for field in app["subscribed_fields"]))
        return list(fields)

    def get_user_profile(self, user_id: str) -> dict[str, Any]:
        """A customer's profile by IGSID (needs the customer's consent: they messaged us)."""
        if not _NUMERIC_ID.match(user_id):
            raise ValueError("an Instagram user id is digits only")
        return self._request(
            "GET", f"{self._base_url}/{user_id}", params={"fields": PROFILE_FIELDS}
        )

    def send_message(
        self, *, recipient_id: str, message: dict[str, Any], tag: str | None = None
    ) -> dict[str, Any]:
        """Send API: one POST, never retried; returns `{recipient_id, message_id}`."""
        body: dict[str, Any] = {"recipient": {"id": recipient_id}, "message": message}
        if tag:
            body["messaging_type"] = "MESSAGE_TAG"
            body["tag"] = tag
        return self._request("POST", self._send_url, json=body)

    def send_sender_action(
        self, *, recipient_id: str, action: str, payload: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """Send API sender action (typing_on/off, mark_seen, react, unreact); one POST."""
        body: dict[str, Any] = {"recipient": {"id": recipient_id}, "sender_action": action}
        if payload is not None:
            body["payload"] = payload
        return self._request("POST", self._send_url, json=body)

    def _request(
        self,
        method: str,
        url: str,
        *,
        params: dict[str, str] | None = None,
        json: dict[str, Any] | None = None,
        token_in_query: bool = False,
    ) -> dict[str, Any]:
        token = self._token.current()
        if token is None:
            raise InstagramNotConfiguredError(
                "INSTAGRAM_USER_TOKEN is not set: the service cannot call the Instagram API."
            )
        headers: dict[str, str] = {}
        if token_in_query:
            params = {**(params or {}), "access_token": token}
        else:
            headers["Authorization"] = f"Bearer {token}"
        endpoint = _endpoint_name(method, url)
        if not self._slots.acquire(timeout=self._queue_timeout):
            logger.warning("instagram %s not called: every slot is busy", endpoint)
            raise InstagramBusyError(
                "Too many calls to the Instagram API are in progress; retry shortly.",
                headers={"Retry-After": "1"},
            )
        started = time.perf_counter()
        try:
            response = self._session.request(
                method,
                url,
                params=params,
                json=json,
                headers=headers,
                timeout=self._timeout,
                proxies=self._proxies_for(url),
            )
        except requests.Timeout as exc:
            _observe(endpoint, started, outcome="timeout")
            logger.warning("instagram %s timed out: %s", endpoint, type(exc).__name__)
            raise InstagramTimeoutError(
                "The Instagram API did not answer in time; retry later."
            ) from None
        except requests.RequestException as exc:
            _observe(endpoint, started, outcome="unreachable")
            logger.warning("instagram %s unreachable: %s", endpoint, type(exc).__name__)
            raise InstagramUnreachableError(
                "The Instagram API is unreachable; retry later."
            ) from None
        finally:
            self._slots.release()
        if response.ok:
            _observe(endpoint, started, outcome="ok")
            self._token.accepted()
            try:
                data = response.json()
            except ValueError:
                data = None
            if not isinstance(data, dict):
                raise InstagramError("The Instagram API answered with an unexpected body.")
            return data
        details = _parse_error(response)
        _observe(endpoint, started, outcome="error", code=details.code)
        logger.warning(
            "instagram %s failed: http=%s code=%s subcode=%s type=%s fbtrace_id=%s message=%s",
            endpoint,
            details.http_status,
            details.code,
            details.subcode,
            details.error_type,
            details.fbtrace_id,
            details.message,
        )
        if details.code == TOKEN_INVALID:
            self._token.rejected(details)
        raise _error_from_envelope(details, _retry_after_seconds(response))


def _observe(endpoint: str, started: float, *, outcome: str, code: int | None = None) -> None:
    metrics.GRAPH_REQUESTS.labels(
        endpoint=endpoint, outcome=outcome, code="" if code is None else str(code)
    ).inc()
    metrics.GRAPH_LATENCY.labels(endpoint=endpoint).observe(time.perf_counter() - started)


def _endpoint_name(method: str, url: str) -> str:
    """A log-safe name for a call: numeric ids collapsed, no query string."""
    path = url.split("?", 1)[0].split("://", 1)[-1]
    path = path.split("/", 1)[1] if "/" in path else ""
    return f"{method} /" + re.sub(r"/[0-9]{5,}", "/{id}", path)
