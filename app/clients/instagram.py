"""All HTTP calls to Meta's Instagram Graph API (graph.instagram.com, or the sandbox).

One pooled `requests.Session`; the token travels in the `Authorization` header (only the token
refresh puts it in the query string, as Meta documents it, and such URLs are never logged);
every call has a (connect, read) timeout; GETs are retried with backoff on transient failures,
a POST never is (Meta may have delivered a message even when it answered with an error).
A failed call raises one of the typed errors of app/clients/instagram_errors.py.

The token comes from a `TokenProvider` (app/services/tokens/ keeps the refreshed one in the
database), which also hears whether Meta accepted it: a `TokenInvalidError` (code 190) marks it
for re-authentication.
"""

import logging
import os
import re
import threading
import time
from collections.abc import Sequence
from typing import Any, Protocol
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from app import metrics
from app.clients.instagram_errors import (
    GraphErrorDetails,
    InstagramBusyError,
    InstagramError,
    InstagramNotConfiguredError,
    InstagramTimeoutError,
    InstagramUnreachableError,
    TokenInvalidError,
    error_from_envelope,
    graph_error_details,
    retry_after_seconds,
)
from app.config import Settings
from app.logs import redact_urllib3_logs
from app.schemas.common import IG_ID

logger = logging.getLogger(__name__)
redact_urllib3_logs()

PROFILE_FIELDS = (
    "name,username,profile_pic,follower_count,is_user_follow_business,"
    "is_business_follow_user,is_verified_user"
)
ME_FIELDS = "user_id,username,name,account_type,profile_picture_url"
CONVERSATION_FIELDS = "participants,updated_time"
MESSAGE_ID_FIELDS = "id,created_time"
MESSAGE_FIELDS = "id,created_time,from,to,message,attachments,is_unsupported"
CONVERSATIONS_PAGE = 25
MESSAGES_PAGE = 100
# Mids and conversation ids are opaque base64-like strings: nothing that could leave the path.
GRAPH_OBJECT_ID = re.compile(r"[A-Za-z0-9_-]{1,1024}")


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
        return self._me(profile_read=False)

    def get_own_profile(self) -> dict[str, Any]:
        """`get_me` read as the account's profile: a refusal is a `ConsentRequiredError`, as
        for any user's profile (`get_user_profile`)."""
        return self._me(profile_read=True)

    def _me(self, *, profile_read: bool) -> dict[str, Any]:
        data = self._request(
            "GET",
            f"{self._base_url}/me",
            params={"fields": ME_FIELDS},
            profile_read=profile_read,
        )
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
        apps = answer.get("data")
        fields: dict[str, None] = {}
        for app in apps if isinstance(apps, list) else []:
            if isinstance(app, dict) and isinstance(app.get("subscribed_fields"), list):
                fields.update(dict.fromkeys(str(field) for field in app["subscribed_fields"]))
        return list(fields)

    def get_user_profile(self, user_id: str) -> dict[str, Any]:
        """A user's profile by IGSID (needs their consent: they messaged us); a refusal is a
        `ConsentRequiredError`."""
        if not IG_ID.fullmatch(user_id):
            raise ValueError("an Instagram user id is digits only")
        return self._request(
            "GET",
            f"{self._base_url}/{user_id}",
            params={"fields": PROFILE_FIELDS},
            profile_read=True,
        )

    # The Conversations API (history): 2 calls/s per account; a rate-limited call raises
    # RateLimitedError (codes 4, 17, 32, 613, 80002), which callers back off from.

    def list_conversations(
        self,
        *,
        user_id: str | None = None,
        after: str | None = None,
        limit: int = CONVERSATIONS_PAGE,
        fields: str = CONVERSATION_FIELDS,
    ) -> dict[str, Any]:
        """One page of the account's conversations, most recently updated first:
        `{data: [{id, updated_time, participants}], paging: {cursors: {after}, next}}`.
        `user_id` (an IGSID) narrows it to the thread with that person."""
        params = {"platform": "instagram", "fields": fields, "limit": str(limit)}
        if user_id is not None:
            if not IG_ID.fullmatch(user_id):
                raise ValueError("an Instagram user id is digits only")
            params["user_id"] = user_id
        if after is not None:
            params["after"] = after
        return self._request("GET", f"{self._base_url}/me/conversations", params=params)

    def conversation_messages(
        self,
        conversation_id: str,
        *,
        after: str | None = None,
        limit: int = MESSAGES_PAGE,
        fields: str = MESSAGE_ID_FIELDS,
    ) -> dict[str, Any]:
        """One page of a conversation's messages, newest first: `{data: [{id, created_time,
        ...}], paging}`. Meta gives every id, but content only for the 20 newest."""
        params = {"fields": fields, "limit": str(limit)}
        if after is not None:
            params["after"] = after
        return self._request(
            "GET", f"{self._base_url}/{_path_id(conversation_id)}/messages", params=params
        )

    def get_message(self, mid: str, *, fields: str = MESSAGE_FIELDS) -> dict[str, Any]:
        """One message by its mid, with fresh attachment URLs (`attachments.data[]`); one
        older than the conversation's 20 newest answers as deleted (an error)."""
        return self._request("GET", f"{self._base_url}/{_path_id(mid)}", params={"fields": fields})

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
        profile_read: bool = False,
    ) -> dict[str, Any]:
        """One call: Meta's JSON object, or the typed error of what went wrong."""
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
        response, started = self._send(
            endpoint, method, url, params=params, json=json, headers=headers
        )
        if not response.ok:
            raise self._failure(endpoint, started, response, profile_read=profile_read)
        _observe(endpoint, started, outcome="ok")
        self._token.accepted()
        try:
            data = response.json()
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise InstagramError("The Instagram API answered with an unexpected body.")
        return data

    def _send(
        self,
        endpoint: str,
        method: str,
        url: str,
        *,
        params: dict[str, str] | None,
        json: dict[str, Any] | None,
        headers: dict[str, str],
    ) -> tuple[requests.Response, float]:
        """The HTTP exchange in a call slot; the response and when it started."""
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
        return response, started

    def _failure(
        self, endpoint: str, started: float, response: requests.Response, *, profile_read: bool
    ) -> InstagramError:
        """Meta's error answer: observed, logged, told to the token provider, typed."""
        details = graph_error_details(response)
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
        error = error_from_envelope(
            details, retry_after=retry_after_seconds(response), profile_read=profile_read
        )
        if isinstance(error, TokenInvalidError):
            self._token.rejected(details)
        return error


def _path_id(object_id: str) -> str:
    """A Graph object id safe to put in a path."""
    if not GRAPH_OBJECT_ID.fullmatch(object_id):
        raise ValueError("a Graph object id is letters, digits, '-' and '_' only")
    return object_id


def _observe(endpoint: str, started: float, *, outcome: str, code: int | None = None) -> None:
    metrics.GRAPH_REQUESTS.labels(
        endpoint=endpoint, outcome=outcome, code="" if code is None else str(code)
    ).inc()
    metrics.GRAPH_LATENCY.labels(endpoint=endpoint).observe(time.perf_counter() - started)


def _endpoint_name(method: str, url: str) -> str:
    """A log-safe name for a call: ids (numbers, mids, conversation ids) collapsed, no query
    string."""
    path = url.split("?", 1)[0].split("://", 1)[-1]
    path = path.split("/", 1)[1] if "/" in path else ""
    return f"{method} /" + re.sub(r"/([0-9]{5,}|[A-Za-z0-9_-]{32,})(?=/|$)", "/{id}", path)
