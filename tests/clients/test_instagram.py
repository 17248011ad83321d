"""Unit tests of the Graph API client, with Meta's answers played by `responses`."""

import json
import logging

import pytest
import requests
import responses
from responses import matchers

from app.clients.instagram import InstagramClient
from app.clients.instagram_errors import (
    ConsentRequiredError,
    GraphErrorDetails,
    InstagramError,
    InstagramNotConfiguredError,
    InstagramTimeoutError,
    InstagramUnavailableError,
    InstagramUnreachableError,
    OutsideWindowError,
    RateLimitedError,
    RecipientNotFoundError,
    TokenInvalidError,
    error_from_envelope,
)
from app.config import Settings
from tests.helpers import USER_TOKEN

BASE = "https://graph.test/v22.0"
SEND_URL = f"{BASE}/me/messages"
PROFILE_URL = f"{BASE}/1187429836452190"


def make_client(**overrides: object) -> InstagramClient:
    defaults: dict[str, object] = {
        "instagram_user_token": USER_TOKEN,
        "instagram_graph_url": "https://graph.test/",
        "instagram_api_version": "v22.0",
        "instagram_get_retries": 2,
    }
    settings = Settings(_env_file=None, **{**defaults, **overrides})
    return InstagramClient(settings)


def graph_error(code: int, subcode: int | None = None, message: str = "boom") -> dict:
    error: dict = {"message": message, "type": "IGApiException", "code": code, "fbtrace_id": "AbC"}
    if subcode is not None:
        error["error_subcode"] = subcode
    return {"error": error}


@responses.activate
def test_token_travels_in_the_authorization_header_only() -> None:
    responses.get(
        PROFILE_URL,
        json={"id": "1187429836452190", "username": "peter"},
        match=[matchers.header_matcher({"Authorization": f"Bearer {USER_TOKEN}"})],
    )

    profile = make_client().get_user_profile("1187429836452190")

    assert profile["username"] == "peter"
    call = responses.calls[0]
    assert USER_TOKEN not in call.request.url
    assert "fields=name%2Cusername%2Cprofile_pic" in call.request.url


@responses.activate
def test_send_posts_the_body_once_and_returns_metas_answer() -> None:
    responses.post(
        SEND_URL,
        json={"recipient_id": "1187429836452190", "message_id": "mid-1"},
        match=[
            matchers.json_params_matcher(
                {"recipient": {"id": "1187429836452190"}, "message": {"text": "hi"}}
            )
        ],
    )

    answer = make_client().send_message(recipient_id="1187429836452190", message={"text": "hi"})

    assert answer == {"recipient_id": "1187429836452190", "message_id": "mid-1"}
    assert len(responses.calls) == 1


@responses.activate
def test_human_agent_tag_is_sent_as_a_message_tag() -> None:
    responses.post(SEND_URL, json={"recipient_id": "1", "message_id": "m"})

    make_client().send_message(recipient_id="1", message={"text": "hi"}, tag="HUMAN_AGENT")

    body = json.loads(responses.calls[0].request.body)
    assert (body["messaging_type"], body["tag"]) == ("MESSAGE_TAG", "HUMAN_AGENT")


@responses.activate
def test_explicit_send_message_url_wins_for_sending() -> None:
    url = "https://graph.other/v21.0/17841400123456789/messages"
    responses.post(url, json={"recipient_id": "1", "message_id": "m"})

    make_client(instagram_send_message_url=url).send_message(
        recipient_id="1", message={"text": "x"}
    )

    assert responses.calls[0].request.url == url


@responses.activate
def test_gets_are_retried_on_transient_errors() -> None:
    responses.get(PROFILE_URL, status=500, json=graph_error(2))
    responses.get(PROFILE_URL, status=503, body="upstream")
    responses.get(PROFILE_URL, json={"id": "1187429836452190", "username": "peter"})

    profile = make_client(instagram_get_retries=2).get_user_profile("1187429836452190")

    assert profile["username"] == "peter"
    assert len(responses.calls) == 3


@responses.activate
def test_a_failed_post_is_never_retried() -> None:
    responses.post(SEND_URL, status=500, json=graph_error(1, message="unknown error"))

    with pytest.raises(InstagramUnavailableError) as raised:
        make_client(instagram_get_retries=3).send_message(recipient_id="1", message={"text": "x"})

    assert len(responses.calls) == 1
    assert raised.value.status_code == 503
    assert raised.value.code == "instagram_unavailable"


@pytest.mark.parametrize(
    ("status", "error", "error_class", "http_status", "code"),
    [
        (
            400,
            graph_error(190, 463, "Error validating access token"),
            TokenInvalidError,
            502,
            "instagram_token_invalid",
        ),
        (
            403,
            graph_error(10, 2534022, "outside of allowed window"),
            OutsideWindowError,
            409,
            "outside_window",
        ),
        (
            403,
            graph_error(10, 2018278, "outside of allowed window"),
            OutsideWindowError,
            409,
            "outside_window",
        ),
        (
            400,
            graph_error(100, 2534014, "The requested user cannot be found."),
            RecipientNotFoundError,
            404,
            "recipient_not_found",
        ),
        (
            400,
            graph_error(100, 2018001, "No matching user found"),
            RecipientNotFoundError,
            404,
            "recipient_not_found",
        ),
        (
            400,
            graph_error(551, None, "This person isn't available"),
            RecipientNotFoundError,
            404,
            "recipient_not_found",
        ),
        (
            400,
            graph_error(230, None, "User consent is required"),
            ConsentRequiredError,
            404,
            "consent_required",
        ),
        (
            400,
            graph_error(613, 2534040, "Calls exceed rate limit"),
            RateLimitedError,
            429,
            "instagram_rate_limited",
        ),
        (
            400,
            graph_error(4, None, "Application request limit reached"),
            RateLimitedError,
            429,
            "instagram_rate_limited",
        ),
        (
            500,
            graph_error(2, None, "Service temporarily unavailable"),
            InstagramUnavailableError,
            503,
            "instagram_unavailable",
        ),
        (400, graph_error(200, 2534041, "disabled access"), InstagramError, 502, "instagram_error"),
        (400, graph_error(10, None, "no permission"), InstagramError, 502, "instagram_error"),
        (400, graph_error(100, None, "Invalid parameter"), InstagramError, 502, "instagram_error"),
        (502, None, InstagramUnavailableError, 503, "instagram_unavailable"),
    ],
    ids=[
        "token",
        "window",
        "window-2018278",
        "recipient",
        "recipient-2018001",
        "551",
        "consent",
        "613",
        "4",
        "2",
        "200",
        "10",
        "100",
        "html-502",
    ],
)
@responses.activate
def test_metas_errors_map_to_typed_errors_and_clear_answers(
    status: int,
    error: dict | None,
    error_class: type[InstagramError],
    http_status: int,
    code: str,
) -> None:
    if error is None:
        responses.post(SEND_URL, status=status, body="<html>Bad Gateway</html>")
    else:
        responses.post(SEND_URL, status=status, json=error)

    with pytest.raises(InstagramError) as raised:
        make_client().send_message(recipient_id="1", message={"text": "x"})

    assert type(raised.value) is error_class
    assert (raised.value.status_code, raised.value.code) == (http_status, code)
    assert raised.value.transient == (http_status in (429, 503))
    if error is not None:
        assert raised.value.graph is not None
        assert raised.value.graph.code == error["error"]["code"]
        assert raised.value.graph.fbtrace_id == "AbC"
        assert error["error"]["message"] in raised.value.message
        record = raised.value.as_record()
        assert (record["code"], record["status"]) == (code, http_status)
        assert record["graph"]["code"] == error["error"]["code"]


@pytest.mark.parametrize(
    ("error", "error_class", "http_status", "code"),
    [
        (
            graph_error(230, None, "User consent is required"),
            ConsentRequiredError,
            404,
            "consent_required",
        ),
        (
            graph_error(100, None, "Invalid parameter"),
            ConsentRequiredError,
            404,
            "consent_required",
        ),
        (
            graph_error(100, 33, "Object with ID does not exist"),
            ConsentRequiredError,
            404,
            "consent_required",
        ),
        (
            graph_error(100, 2534014, "The requested user cannot be found."),
            ConsentRequiredError,
            404,
            "consent_required",
        ),
        (
            graph_error(190, 460, "Error validating access token"),
            TokenInvalidError,
            502,
            "instagram_token_invalid",
        ),
        (
            graph_error(551, None, "This person isn't available"),
            RecipientNotFoundError,
            404,
            "recipient_not_found",
        ),
        (
            graph_error(17, None, "User request limit reached"),
            RateLimitedError,
            429,
            "instagram_rate_limited",
        ),
    ],
    ids=["230", "100", "100-33", "100-2534014", "190", "551", "17"],
)
@responses.activate
def test_a_refused_profile_read_is_a_consent_error(
    error: dict, error_class: type[InstagramError], http_status: int, code: str
) -> None:
    responses.get(PROFILE_URL, status=400, json=error)

    with pytest.raises(InstagramError) as raised:
        make_client(instagram_get_retries=0).get_user_profile("1187429836452190")

    assert type(raised.value) is error_class
    assert (raised.value.status_code, raised.value.code) == (http_status, code)


@pytest.mark.parametrize(
    ("code", "read_as_profile", "error_class"),
    [
        (100, False, InstagramError),
        (100, True, ConsentRequiredError),
        (230, False, ConsentRequiredError),
        (230, True, ConsentRequiredError),
    ],
)
@responses.activate
def test_me_is_a_profile_read_only_when_it_reads_the_accounts_profile(
    code: int, read_as_profile: bool, error_class: type[InstagramError]
) -> None:
    responses.get(f"{BASE}/me", status=400, json=graph_error(code, None, "refused"))
    client = make_client(instagram_get_retries=0)

    with pytest.raises(InstagramError) as raised:
        client.get_own_profile() if read_as_profile else client.get_me()

    assert type(raised.value) is error_class


def test_error_from_envelope_keeps_metas_details_and_the_retry_hint() -> None:
    details = GraphErrorDetails(
        http_status=400,
        code=613,
        subcode=None,
        message="Calls exceed rate limit",
        error_type="OAuthException",
        fbtrace_id="Xyz",
    )

    error = error_from_envelope(details, retry_after=120)

    assert isinstance(error, RateLimitedError)
    assert error.graph is details
    assert error.graph_code == 613
    assert error.headers == {"Retry-After": "120"}
    assert details.describe() == "code 613: Calls exceed rate limit (fbtrace_id Xyz)"


@responses.activate
def test_rate_limit_answer_carries_retry_after_from_metas_usage_header() -> None:
    usage = {"17841400123456789": [{"type": "instagram", "estimated_time_to_regain_access": 3}]}
    responses.post(
        SEND_URL,
        status=400,
        json=graph_error(80002),
        headers={"X-Business-Use-Case-Usage": json.dumps(usage)},
    )

    with pytest.raises(RateLimitedError) as raised:
        make_client().send_message(recipient_id="1", message={"text": "x"})

    assert raised.value.status_code == 429
    assert raised.value.headers == {"Retry-After": "180"}


@responses.activate
def test_rate_limit_without_a_hint_waits_a_minute() -> None:
    responses.post(SEND_URL, status=400, json=graph_error(17))

    with pytest.raises(RateLimitedError) as raised:
        make_client().send_message(recipient_id="1", message={"text": "x"})

    assert raised.value.headers == {"Retry-After": "60"}


@responses.activate
def test_timeout_is_a_504_and_connection_failure_a_503() -> None:
    responses.post(SEND_URL, body=requests.ReadTimeout("slow"))
    responses.get(PROFILE_URL, body=requests.ConnectionError("refused"))
    client = make_client(instagram_get_retries=0)

    with pytest.raises(InstagramTimeoutError) as timed_out:
        client.send_message(recipient_id="1", message={"text": "x"})
    with pytest.raises(InstagramUnreachableError) as unreachable:
        client.get_user_profile("1187429836452190")

    assert (timed_out.value.status_code, timed_out.value.code) == (504, "instagram_timeout")
    assert (unreachable.value.status_code, unreachable.value.code) == (503, "instagram_unreachable")


def test_without_a_token_no_call_is_made() -> None:
    client = InstagramClient(Settings(_env_file=None))

    with pytest.raises(InstagramNotConfiguredError) as raised:
        client.get_me()

    assert (raised.value.status_code, raised.value.code) == (503, "instagram_not_configured")


def test_profile_ids_must_be_digits() -> None:
    with pytest.raises(ValueError, match="digits"):
        make_client().get_user_profile("../me/messages")


@responses.activate
def test_me_accepts_the_flat_and_the_wrapped_shape() -> None:
    responses.get(f"{BASE}/me", json={"id": "9", "user_id": "17841400123456789"})
    responses.get(f"{BASE}/me", json={"data": [{"id": "9", "user_id": "17841400123456789"}]})
    client = make_client()

    assert client.get_me()["user_id"] == "17841400123456789"
    assert client.get_me()["user_id"] == "17841400123456789"


@responses.activate
def test_errors_are_logged_with_metas_code_and_trace_but_never_the_token(
    caplog: pytest.LogCaptureFixture,
) -> None:
    responses.get(PROFILE_URL, status=400, json=graph_error(190, 467, "Invalid OAuth access token"))

    with caplog.at_level(logging.DEBUG), pytest.raises(TokenInvalidError):
        make_client().get_user_profile("1187429836452190")

    assert "code=190 subcode=467" in caplog.text
    assert "fbtrace_id=AbC" in caplog.text
    assert "GET /v22.0/{id}" in caplog.text
    assert USER_TOKEN not in caplog.text


@responses.activate
def test_proxy_variables_are_honoured_and_read_once_per_host(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    monkeypatch.setenv("NO_PROXY", "graph.bypass")
    monkeypatch.delenv("https_proxy", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    responses.get(PROFILE_URL, json={"id": "1187429836452190"})
    responses.get("https://graph.bypass/v22.0/me", json={"user_id": "1"})
    lookups: list[str] = []
    environ_proxies = requests.utils.get_environ_proxies

    def counted(url: str, no_proxy: str | None = None) -> dict[str, str]:
        lookups.append(url)
        return environ_proxies(url, no_proxy)

    monkeypatch.setattr(requests.utils, "get_environ_proxies", counted)
    client = make_client()

    client.get_user_profile("1187429836452190")
    client.get_user_profile("1187429836452190")
    make_client(instagram_graph_url="https://graph.bypass/").get_me()

    first, second, bypassed = (call.request.req_kwargs["proxies"] for call in responses.calls)
    assert first["https"] == second["https"] == "http://proxy.internal:3128"
    assert "https" not in bypassed
    assert lookups == ["https://graph.test", "https://graph.bypass"]  # once per host


class RecordingToken:
    """A TokenProvider that remembers what the client told it."""

    def __init__(self) -> None:
        self.rejections: list[GraphErrorDetails] = []
        self.acceptances = 0

    def current(self) -> str | None:
        return USER_TOKEN

    def rejected(self, error: GraphErrorDetails) -> None:
        self.rejections.append(error)

    def accepted(self) -> None:
        self.acceptances += 1


@responses.activate
def test_only_a_token_error_tells_the_provider_its_token_was_rejected() -> None:
    responses.get(PROFILE_URL, status=400, json=graph_error(230, None, "consent"))
    responses.get(PROFILE_URL, status=400, json=graph_error(190, 463, "expired"))
    responses.get(PROFILE_URL, json={"id": "1187429836452190"})
    token = RecordingToken()
    settings = Settings(
        _env_file=None, instagram_graph_url="https://graph.test/", instagram_get_retries=0
    )
    client = InstagramClient(settings, token=token)

    with pytest.raises(ConsentRequiredError):
        client.get_user_profile("1187429836452190")
    assert token.rejections == []
    with pytest.raises(TokenInvalidError):
        client.get_user_profile("1187429836452190")
    assert [(error.code, error.subcode) for error in token.rejections] == [(190, 463)]
    client.get_user_profile("1187429836452190")
    assert token.acceptances == 1
