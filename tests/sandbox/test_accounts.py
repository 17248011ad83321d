"""The sandbox's token lifecycle (refresh, expiry, revocation) and webhook subscription."""

import pytest

from tests.sandbox.conftest import ACCOUNT_ID, APP_SCOPED_ID, TOKEN, SandboxClient
from tests.sandbox.test_sandbox import assert_graph_error

DAY = 24 * 60 * 60
FIELDS = "messages,message_reactions,messaging_seen,messaging_postbacks"


def refresh(sandbox: SandboxClient, token: str = TOKEN, grant_type: str = "ig_refresh_token"):
    """`GET /refresh_access_token` with the token in the query string, as Meta documents it."""
    return sandbox.http.get(
        f"{sandbox.url}/refresh_access_token",
        params={"grant_type": grant_type, "access_token": token},
        timeout=5,
    )


def update_tokens(sandbox: SandboxClient, **body) -> list[dict]:
    response = sandbox.control("PUT", "/tokens", json=body)
    assert response.status_code == 200, response.text
    return response.json()


# Token refresh


def test_a_token_a_day_old_is_refreshed_for_60_days(sandbox: SandboxClient) -> None:
    update_tokens(sandbox, age_seconds=2 * DAY)

    response = refresh(sandbox)

    assert response.status_code == 200
    answer = response.json()
    assert answer["token_type"] == "bearer"
    assert answer["expires_in"] == 60 * DAY
    fresh = answer["access_token"]
    assert fresh.startswith("IGAA")
    assert fresh != TOKEN
    assert sandbox.graph("GET", "/me", token=fresh).status_code == 200
    # Meta does not document the old token's fate: the sandbox keeps it until it expires.
    assert sandbox.graph("GET", "/me").status_code == 200
    issued = sandbox.control("GET", "/tokens").json()
    assert [token["value"] for token in issued] == [TOKEN, fresh]


def test_a_token_younger_than_a_day_is_not_refreshed(sandbox: SandboxClient) -> None:
    update_tokens(sandbox, age_seconds=23 * 60 * 60)

    error = assert_graph_error(refresh(sandbox), status=400, code=100)

    assert "24 hours" in error["message"]


def test_refresh_needs_the_ig_refresh_token_grant(sandbox: SandboxClient) -> None:
    update_tokens(sandbox, age_seconds=2 * DAY)

    assert_graph_error(refresh(sandbox, grant_type="ig_exchange_token"), status=400, code=100)


def test_refresh_needs_a_valid_token(sandbox: SandboxClient) -> None:
    assert_graph_error(refresh(sandbox, token="IGAAnot-issued"), status=400, code=190)


def test_the_refresh_token_never_reaches_the_calls_log(sandbox: SandboxClient) -> None:
    update_tokens(sandbox, age_seconds=2 * DAY)
    refresh(sandbox)

    calls = sandbox.control("GET", "/calls").json()

    assert [(call["path"], call["kind"]) for call in calls] == [
        ("/refresh_access_token", "refresh")
    ]
    assert calls[0]["query"] == {"grant_type": "ig_refresh_token"}


def test_a_refresh_fault_plays_on_refresh_calls_only(sandbox: SandboxClient) -> None:
    update_tokens(sandbox, age_seconds=2 * DAY)
    sandbox.control(
        "POST", "/faults", json={"kind": "refresh", "error": {"message": "down", "code": 2}}
    )

    assert sandbox.graph("GET", "/me").status_code == 200
    assert_graph_error(refresh(sandbox), status=400, code=2)
    assert refresh(sandbox).status_code == 200


# Expiry and revocation


def test_an_expired_token_answers_190_463(sandbox: SandboxClient) -> None:
    update_tokens(sandbox, expires_in_seconds=-1)

    error = assert_graph_error(sandbox.graph("GET", "/me"), status=400, code=190, subcode=463)

    assert "expired" in error["message"]


def test_a_revoked_token_answers_190_460_to_every_call(sandbox: SandboxClient) -> None:
    customer = sandbox.messaged_customer()
    update_tokens(sandbox, revoked=True)

    for response in (
        sandbox.graph("GET", "/me"),
        sandbox.graph("GET", f"/{customer['id']}"),
        sandbox.send({"recipient": {"id": customer["id"]}, "message": {"text": "hi"}}),
        sandbox.graph("GET", "/me/subscribed_apps"),
    ):
        assert_graph_error(response, status=400, code=190, subcode=460)

    update_tokens(sandbox, revoked=False)
    assert sandbox.graph("GET", "/me").status_code == 200


def test_one_token_can_be_revoked_and_the_others_still_work(sandbox: SandboxClient) -> None:
    update_tokens(sandbox, age_seconds=2 * DAY)
    fresh = refresh(sandbox).json()["access_token"]

    update_tokens(sandbox, token=TOKEN, revoked=True)

    assert_graph_error(sandbox.graph("GET", "/me"), status=400, code=190, subcode=460)
    assert sandbox.graph("GET", "/me", token=fresh).status_code == 200


def test_updating_an_unknown_token_is_404(sandbox: SandboxClient) -> None:
    response = sandbox.control("PUT", "/tokens", json={"token": "IGAAnope", "revoked": True})

    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


def test_reset_restores_the_configured_token_alone(sandbox: SandboxClient) -> None:
    update_tokens(sandbox, age_seconds=2 * DAY)
    refresh(sandbox)
    update_tokens(sandbox, revoked=True)

    sandbox.control("POST", "/reset")

    tokens = sandbox.control("GET", "/tokens").json()
    assert [(token["value"], token["revoked"]) for token in tokens] == [(TOKEN, False)]
    assert tokens[0]["expires_at_ms"] - tokens[0]["issued_at_ms"] == 60 * DAY * 1000


# Webhook subscription


def test_subscribe_read_and_unsubscribe(sandbox: SandboxClient) -> None:
    assert sandbox.graph("GET", "/me/subscribed_apps").json() == {"data": []}

    subscribed = sandbox.graph("POST", "/me/subscribed_apps", params={"subscribed_fields": FIELDS})
    assert subscribed.json() == {"success": True}
    data = sandbox.graph("GET", "/me/subscribed_apps").json()["data"]
    assert data[0]["subscribed_fields"] == FIELDS.split(",")
    assert sandbox.control("GET", "/subscription").json() == {
        "subscribed_fields": FIELDS.split(",")
    }

    assert sandbox.graph("DELETE", "/me/subscribed_apps").json() == {"success": True}
    assert sandbox.graph("GET", "/me/subscribed_apps").json() == {"data": []}


def test_a_new_subscription_replaces_the_fields(sandbox: SandboxClient) -> None:
    sandbox.graph("POST", "/me/subscribed_apps", params={"subscribed_fields": FIELDS})
    sandbox.graph("POST", "/me/subscribed_apps", params={"subscribed_fields": "messages"})

    data = sandbox.graph("GET", "/me/subscribed_apps").json()["data"]

    assert data[0]["subscribed_fields"] == ["messages"]


@pytest.mark.parametrize("fields", [None, "", "messages,nonsense"])
def test_missing_or_unknown_fields_are_code_100(sandbox: SandboxClient, fields) -> None:
    params = {} if fields is None else {"subscribed_fields": fields}

    response = sandbox.graph("POST", "/me/subscribed_apps", params=params)

    assert_graph_error(response, status=400, code=100)
    assert sandbox.control("GET", "/subscription").json() == {"subscribed_fields": []}


def test_the_account_id_path_works_and_the_app_scoped_id_does_not(
    sandbox: SandboxClient,
) -> None:
    by_id = sandbox.graph(
        "POST", f"/{ACCOUNT_ID}/subscribed_apps", params={"subscribed_fields": "messages"}
    )
    assert by_id.json() == {"success": True}
    assert sandbox.graph("GET", f"/{ACCOUNT_ID}/subscribed_apps").json()["data"]

    wrong = sandbox.graph("GET", f"/{APP_SCOPED_ID}/subscribed_apps")
    assert_graph_error(wrong, status=400, code=100, subcode=33)
