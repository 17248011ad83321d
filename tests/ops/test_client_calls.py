"""The Graph client's token-lifecycle calls, against Meta's documented shapes (`responses`)."""

import responses
from responses import matchers

from app.clients.instagram import InstagramClient
from app.config import Settings
from tests.helpers import USER_TOKEN


def make_client() -> InstagramClient:
    settings = Settings(
        _env_file=None, instagram_user_token=USER_TOKEN, instagram_graph_url="https://graph.test"
    )
    return InstagramClient(settings)


@responses.activate
def test_refresh_sends_the_token_as_metas_access_token_parameter_only() -> None:
    responses.get(
        "https://graph.test/refresh_access_token",
        json={"access_token": "IGAAnew", "token_type": "bearer", "expires_in": 5183944},
        match=[
            matchers.query_param_matcher(
                {"grant_type": "ig_refresh_token", "access_token": USER_TOKEN}
            )
        ],
    )

    answer = make_client().refresh_access_token()

    assert answer["expires_in"] == 5183944
    assert "Authorization" not in responses.calls[0].request.headers


@responses.activate
def test_subscribed_fields_are_read_from_every_app_entry() -> None:
    responses.get(
        "https://graph.test/v25.0/me/subscribed_apps",
        json={
            "data": [
                {"subscribed_fields": ["messages", "message_edit"], "id": "1"},
                {"subscribed_fields": ["messages", "messaging_seen"], "id": "2"},
                {"name": "an entry without fields"},
            ]
        },
    )

    fields = make_client().subscribed_webhook_fields()

    assert fields == ["messages", "message_edit", "messaging_seen"]


@responses.activate
def test_subscribe_posts_the_fields_in_the_query_string() -> None:
    responses.post(
        "https://graph.test/v25.0/me/subscribed_apps",
        json={"success": True},
        match=[matchers.query_param_matcher({"subscribed_fields": "messages,message_edit"})],
    )

    assert make_client().subscribe_webhooks(["messages", "message_edit"]) == {"success": True}
    assert responses.calls[0].request.headers["Authorization"] == f"Bearer {USER_TOKEN}"
