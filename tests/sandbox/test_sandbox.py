"""The sandbox behaves like graph.instagram.com and delivers webhooks like Meta."""

import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from app.sandbox import SandboxConfig
from app.sandbox.clock import now_ms
from app.sandbox.ids import new_mid
from app.sandbox.webhooks import deliver, encode
from tests.helpers import wait_until
from tests.sandbox.conftest import ACCOUNT_ID, APP_SCOPED_ID, CONFIG_ENV_VARS, signed_json

REPO_ROOT = Path(__file__).resolve().parents[2]
MID_PREFIX = "aWdfZAG1faXRlbToxOklHTWVzc2FnZA"
HOUR_MS = 60 * 60 * 1000


def only_item(payload: dict) -> dict:
    """The single messaging item of a one-entry delivery."""
    assert payload["object"] == "instagram"
    [entry] = payload["entry"]
    assert entry["id"] == ACCOUNT_ID
    assert isinstance(entry["time"], int)
    [item] = entry["messaging"]
    return item


def assert_graph_error(
    response: requests.Response, *, status: int, code: int, subcode: int | None = None
) -> dict:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code
    assert error.get("error_subcode") == subcode
    assert {"message", "type", "fbtrace_id"} <= error.keys()
    assert len(error["fbtrace_id"]) == 23
    return error


# Configuration


def test_config_reads_the_service_env_names(monkeypatch, tmp_path):
    for name in CONFIG_ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("INSTAGRAM_USER_TOKEN", "IGAAtoken")
    monkeypatch.setenv("INSTAGRAM_ACCOUNT_ID", "17841499999999999")
    monkeypatch.setenv("SANDBOX_ECHO_MODE", "before")
    env_file = tmp_path / ".env"
    env_file.write_text("INSTAGRAM_APP_SECRET=from-dotenv\nSANDBOX_LATENCY_MS=25\nOTHER=x\n")

    config = SandboxConfig(_env_file=env_file)

    assert config.access_token.get_secret_value() == "IGAAtoken"
    assert config.app_secret.get_secret_value() == "from-dotenv"
    assert config.account_id == "17841499999999999"
    assert config.echo_mode == "before"
    assert config.latency_ms == 25
    assert "IGAAtoken" not in repr(config)
    assert "from-dotenv" not in repr(config)


def test_config_defaults_without_environment(monkeypatch):
    for name in CONFIG_ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    config = SandboxConfig(_env_file=None)
    assert config.access_token.get_secret_value() == "sandbox-user-token"
    assert config.account_id == "17841400000000001"
    assert config.app_scoped_id != config.account_id
    assert str(config.webhook_url) == "http://127.0.0.1:8000/webhook"
    assert config.echo_mode == "after"


@pytest.mark.slow
def test_cli_help_exits_zero():
    result = subprocess.run(
        [sys.executable, "-m", "app.sandbox", "--help"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "--webhook-url" in result.stdout


# Token and routing


@pytest.mark.parametrize("token", [None, "wrong-token"])
def test_graph_rejects_missing_or_wrong_token(sandbox, token):
    response = sandbox.graph("GET", "/me", token=token)
    error = assert_graph_error(response, status=400, code=190)
    assert error["type"] == "OAuthException"
    assert error["message"] == "Invalid OAuth access token - Cannot parse access token"


def test_graph_accepts_token_as_query_parameter(sandbox):
    response = sandbox.graph("GET", "/me", token=None, params={"access_token": "test-user-token"})
    assert response.status_code == 200


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/v22.0/me/conversations"), ("POST", "/v22.0/me"), ("GET", "/22/me"), ("GET", "/")],
)
def test_unsupported_graph_paths_are_code_100(sandbox, method, path):
    response = sandbox.http.request(
        method, sandbox.url + path, headers={"Authorization": "Bearer test-user-token"}
    )
    assert_graph_error(response, status=400, code=100)


# /me


def test_me_returns_requested_fields_and_app_scoped_id(sandbox):
    fields = "user_id,username,name,account_type,profile_picture_url"
    response = sandbox.graph("GET", "/me", params={"fields": fields})

    assert response.status_code == 200
    me = response.json()
    assert me["user_id"] == ACCOUNT_ID
    assert me["id"] == APP_SCOPED_ID  # NOT the id webhooks carry
    assert me["username"] == "sandbox_business"
    assert me["name"] == "Sandbox Business"
    assert me["account_type"] == "BUSINESS"
    assert me["profile_picture_url"].startswith("https://")


def test_me_without_fields_is_lenient(sandbox):
    me = sandbox.graph("GET", "/me").json()
    assert me == {"user_id": ACCOUNT_ID, "username": "sandbox_business", "id": APP_SCOPED_ID}


# User Profile API


def test_profile_of_a_customer_who_messaged(sandbox):
    customer = sandbox.messaged_customer(
        name="Peter Chang",
        username="peter_chang_live",
        profile_pic="https://scontent.example/p.jpg",
        follower_count=1234,
        is_business_follow_user=True,
    )
    fields = (
        "name,username,profile_pic,follower_count,is_user_follow_business,"
        "is_business_follow_user,is_verified_user"
    )

    response = sandbox.graph("GET", f"/{customer['id']}", params={"fields": fields})

    assert response.status_code == 200
    assert response.json() == {
        "name": "Peter Chang",
        "username": "peter_chang_live",
        "profile_pic": "https://scontent.example/p.jpg",
        "follower_count": 1234,
        "is_user_follow_business": False,
        "is_business_follow_user": True,
        "is_verified_user": False,
        "id": customer["id"],
    }


def test_profile_returns_only_requested_fields(sandbox):
    customer = sandbox.messaged_customer(username="ann")
    response = sandbox.graph("GET", f"/{customer['id']}", params={"fields": "username"})
    assert response.json() == {"username": "ann", "id": customer["id"]}


def test_profile_of_unknown_id_is_100_33(sandbox):
    response = sandbox.graph("GET", "/1234567890123456", params={"fields": "name"})
    error = assert_graph_error(response, status=400, code=100, subcode=33)
    assert error["type"] == "GraphMethodException"
    assert "Object with ID '1234567890123456' does not exist" in error["message"]


def test_profile_without_consent_is_230(sandbox):
    customer = sandbox.create_customer()
    response = sandbox.graph("GET", f"/{customer['id']}", params={"fields": "name"})
    error = assert_graph_error(response, status=400, code=230)
    assert error["message"] == "User consent is required to access user profile"


# Send API and echoes


def test_send_text_answers_mid_then_delivers_signed_echo(sandbox, receiver):
    customer = sandbox.messaged_customer()
    receiver.hold()  # a service that does not answer the echo: the Send API answers anyway

    response = sandbox.send({"recipient": {"id": customer["id"]}, "message": {"text": "Thanks!"}})
    [echo] = receiver.wait_for(1)  # delivered, its answer still held
    receiver.release()

    assert response.status_code == 200
    answer = response.json()
    assert answer["recipient_id"] == customer["id"]
    mid = answer["message_id"]
    assert mid.startswith(MID_PREFIX)
    assert mid.endswith("ZDZD")
    item = only_item(signed_json(echo))
    assert item["sender"] == {"id": ACCOUNT_ID}
    assert item["recipient"] == {"id": customer["id"]}
    assert isinstance(item["timestamp"], int)
    assert item["message"] == {"mid": mid, "text": "Thanks!", "is_echo": True}


def test_echo_before_mode_arrives_before_the_answer(sandbox, receiver):
    customer = sandbox.messaged_customer()
    sandbox.set_config(echo_mode="before")

    response = sandbox.send({"recipient": {"id": customer["id"]}, "message": {"text": "Hi"}})

    assert response.status_code == 200
    [echo] = receiver.deliveries  # already there when the answer came back
    assert only_item(signed_json(echo))["message"]["mid"] == response.json()["message_id"]


def test_echo_off_mode_delivers_nothing(sandbox, receiver):
    customer = sandbox.messaged_customer()
    sandbox.set_config(echo_mode="off")

    response = sandbox.send({"recipient": {"id": customer["id"]}, "message": {"text": "Hi"}})

    assert response.status_code == 200
    sandbox.settle()  # all the sandbox does for that call is done
    assert receiver.deliveries == []


def test_single_attachment_echoes_as_attachments_list_on_meta_cdn(sandbox, receiver):
    customer = sandbox.messaged_customer()
    sandbox.set_config(echo_mode="before")
    attachment = {"type": "image", "payload": {"url": "https://shop.example/a.jpg"}}

    response = sandbox.send(
        {"recipient": {"id": customer["id"]}, "message": {"attachment": attachment}}
    )

    assert response.status_code == 200
    message = only_item(signed_json(receiver.deliveries[0]))["message"]
    assert message["is_echo"] is True
    assert "text" not in message
    [echoed] = message["attachments"]
    assert echoed["type"] == "image"
    # Re-hosted on the sandbox's CDN (Meta's: lookaside.fbsbx.com).
    assert echoed["payload"]["url"].startswith(f"{sandbox.url}/ig_messaging_cdn/?asset_id=")


def test_send_via_account_id_path_works_but_not_via_app_scoped_id(sandbox):
    customer = sandbox.messaged_customer()
    body = {"recipient": {"id": customer["id"]}, "message": {"text": "Hi"}}

    assert sandbox.graph("POST", f"/{ACCOUNT_ID}/messages", json=body).status_code == 200
    response = sandbox.graph("POST", f"/{APP_SCOPED_ID}/messages", json=body)
    assert_graph_error(response, status=400, code=100, subcode=33)


def test_every_mid_is_new():
    mids = {new_mid(account_id=ACCOUNT_ID) for _ in range(50)}
    assert len(mids) == 50
    assert all(150 <= len(mid) <= 200 for mid in mids)


def test_unknown_recipient_is_2534014(sandbox):
    response = sandbox.send({"recipient": {"id": "1999999999999999"}, "message": {"text": "Hi"}})
    error = assert_graph_error(response, status=400, code=100, subcode=2534014)
    assert error["message"] == "The requested user cannot be found."
    assert error["type"] == "IGApiException"


def test_customer_who_never_wrote_is_outside_the_window(sandbox):
    customer = sandbox.create_customer()
    response = sandbox.send({"recipient": {"id": customer["id"]}, "message": {"text": "Hi"}})
    assert_graph_error(response, status=403, code=10, subcode=2534022)


def test_window_closes_24_hours_after_the_last_customer_message(sandbox):
    customer = sandbox.create_customer()
    sandbox.customer_writes(customer["id"], timestamp_ms=now_ms() - 25 * HOUR_MS, deliver=False)

    response = sandbox.send({"recipient": {"id": customer["id"]}, "message": {"text": "Hi"}})

    error = assert_graph_error(response, status=403, code=10, subcode=2534022)
    assert error["message"] == "This message is sent outside of allowed window."
    assert error["type"] == "IGApiException"


def test_window_is_open_just_within_24_hours(sandbox):
    customer = sandbox.create_customer()
    sandbox.customer_writes(customer["id"], timestamp_ms=now_ms() - 23 * HOUR_MS, deliver=False)
    response = sandbox.send({"recipient": {"id": customer["id"]}, "message": {"text": "Hi"}})
    assert response.status_code == 200


def test_human_agent_tag_extends_the_window_to_7_days(sandbox):
    customer = sandbox.create_customer()
    sandbox.customer_writes(customer["id"], timestamp_ms=now_ms() - 6 * 24 * HOUR_MS, deliver=False)
    body = {
        "recipient": {"id": customer["id"]},
        "messaging_type": "MESSAGE_TAG",
        "tag": "HUMAN_AGENT",
        "message": {"text": "A colleague here"},
    }

    assert sandbox.send(body).status_code == 200


def test_human_agent_tag_does_not_reach_beyond_7_days(sandbox):
    customer = sandbox.create_customer()
    sandbox.customer_writes(customer["id"], timestamp_ms=now_ms() - 8 * 24 * HOUR_MS, deliver=False)
    body = {"recipient": {"id": customer["id"]}, "tag": "HUMAN_AGENT", "message": {"text": "Hi"}}

    assert_graph_error(sandbox.send(body), status=403, code=10, subcode=2534022)


def test_an_older_message_does_not_move_the_window_back(sandbox):
    customer = sandbox.messaged_customer()
    sandbox.customer_writes(customer["id"], timestamp_ms=now_ms() - 30 * HOUR_MS, deliver=False)

    stored = sandbox.control("GET", f"/customers/{customer['id']}").json()
    assert stored["last_inbound_ms"] > now_ms() - HOUR_MS
    body = {"recipient": {"id": customer["id"]}, "message": {"text": "Hi"}}
    assert sandbox.send(body).status_code == 200


def test_text_limit_counts_utf8_bytes_not_characters(sandbox):
    customer = sandbox.messaged_customer()

    def send_text(text: str) -> requests.Response:
        return sandbox.send({"recipient": {"id": customer["id"]}, "message": {"text": text}})

    assert send_text("я" * 500).status_code == 200  # 500 characters, 1000 bytes
    assert send_text("😀" * 250).status_code == 200  # 250 characters, 1000 bytes
    for too_long in ("я" * 501, "😀" * 251):  # far below 1000 characters
        error = assert_graph_error(send_text(too_long), status=400, code=100)
        assert error["message"] == (
            "(#100) Length of param message[text] must be less than or equal to 1000"
        )


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"recipient": {}, "message": {"text": "Hi"}},
        {"recipient": {"id": "ID"}},
        {"recipient": {"id": "ID"}, "message": {}},
        {
            "recipient": {"id": "ID"},
            "message": {"text": "Hi", "attachment": {"type": "like_heart"}},
        },
        {"recipient": {"id": "ID"}, "message": {"attachment": {"type": "sticker"}}},
        {"recipient": {"id": "ID"}, "message": {"attachment": {"type": "image"}}},
        {
            "recipient": {"id": "ID"},
            "message": {"attachments": [{"type": "image", "payload": {"url": "https://x/a"}}] * 11},
        },
        {
            "recipient": {"id": "ID"},
            "message": {
                "text": "Pick",
                "quick_replies": [{"content_type": "text", "title": "t", "payload": "p"}] * 14,
            },
        },
        {"recipient": {"id": "ID"}, "tag": "ACCOUNT_UPDATE", "message": {"text": "Hi"}},
        {"recipient": {"id": "ID"}, "sender_action": "dance"},
        {"recipient": {"id": "ID"}, "sender_action": "react", "payload": {"reaction": "love"}},
    ],
)
def test_malformed_send_bodies_are_code_100(sandbox, body):
    customer = sandbox.messaged_customer()
    text = json.dumps(body).replace('"ID"', json.dumps(customer["id"]))
    response = sandbox.graph(
        "POST", "/me/messages", data=text, headers={"Content-Type": "application/json"}
    )
    assert_graph_error(response, status=400, code=100)


def test_body_that_is_not_json_is_code_100(sandbox):
    response = sandbox.graph(
        "POST", "/me/messages", data=b"recipient=1", headers={"Content-Type": "application/json"}
    )
    assert_graph_error(response, status=400, code=100)
    [sent] = sandbox.control("GET", "/sent").json()
    assert sent["body"] == "recipient=1"
    assert sent["status_code"] == 400


def test_quick_replies_and_image_lists_within_limits_are_accepted(sandbox):
    customer = sandbox.messaged_customer()
    images = [{"type": "image", "payload": {"url": f"https://x/{n}.jpg"}} for n in range(10)]
    quick_replies = [
        {"content_type": "text", "title": f"o{n}", "payload": f"P{n}"} for n in range(13)
    ]

    for message in ({"attachments": images}, {"text": "Pick", "quick_replies": quick_replies}):
        assert sandbox.send({"recipient": {"id": customer["id"]}, "message": message}).ok


def test_sender_action_answers_without_mid_and_is_not_echoed(sandbox, receiver):
    customer = sandbox.messaged_customer()
    sandbox.set_config(echo_mode="before")  # an echo would be in before the answer

    typing = sandbox.send({"recipient": {"id": customer["id"]}, "sender_action": "typing_on"})
    react = sandbox.send(
        {
            "recipient": {"id": customer["id"]},
            "sender_action": "react",
            "payload": {"message_id": "aWdf…ZDZD", "reaction": "love"},
        }
    )

    assert typing.json() == {"recipient_id": customer["id"]}
    assert react.json() == {"recipient_id": customer["id"]}
    assert receiver.deliveries == []


def test_sender_action_obeys_the_window(sandbox):
    customer = sandbox.create_customer()
    response = sandbox.send({"recipient": {"id": customer["id"]}, "sender_action": "mark_seen"})
    assert_graph_error(response, status=403, code=10, subcode=2534022)


# Faults and latency


def test_fault_answers_the_error_once_then_normal_service_resumes(sandbox, receiver):
    customer = sandbox.messaged_customer()
    sandbox.set_config(echo_mode="before")
    fault = {
        "kind": "send",
        "status": 500,
        "error": {"message": "An unknown error has occurred.", "code": 1, "is_transient": True},
    }
    assert sandbox.control("POST", "/faults", json=fault).status_code == 201
    body = {"recipient": {"id": customer["id"]}, "message": {"text": "Hi"}}

    assert sandbox.graph("GET", "/me").status_code == 200  # other kinds are untouched
    first = sandbox.send(body)
    second = sandbox.send(body)

    error = assert_graph_error(first, status=500, code=1)
    assert error["type"] == "OAuthException"
    assert error["is_transient"] is True
    assert second.status_code == 200
    assert len(receiver.deliveries) == 1  # the failed send was not echoed
    assert sandbox.control("GET", "/faults").json() == []


def test_fault_can_fail_several_calls_of_any_kind(sandbox):
    token_expired = {"message": "Error validating access token", "code": 190, "error_subcode": 463}
    sandbox.control("POST", "/faults", json={"kind": "any", "times": 2, "error": token_expired})

    statuses = [sandbox.graph("GET", "/me").status_code for _ in range(3)]

    assert statuses == [400, 400, 200]


def test_fault_delay_simulates_a_hanging_meta(sandbox):
    sandbox.control("POST", "/faults", json={"kind": "me", "delay_seconds": 0.3})

    started = time.monotonic()
    response = sandbox.graph("GET", "/me")

    assert response.status_code == 200
    assert time.monotonic() - started >= 0.3


def test_fault_delay_trips_a_client_timeout(sandbox):
    sandbox.control("POST", "/faults", json={"kind": "me", "delay_seconds": 0.4})

    with pytest.raises(requests.Timeout):
        sandbox.http.get(
            f"{sandbox.url}/v22.0/me",
            headers={"Authorization": "Bearer test-user-token"},
            timeout=0.1,
        )


def test_clearing_faults(sandbox):
    sandbox.control("POST", "/faults", json={"kind": "any", "error": {"message": "x", "code": 2}})
    assert sandbox.control("DELETE", "/faults").json() == []
    assert sandbox.graph("GET", "/me").status_code == 200


def test_clearing_faults_answers_the_calls_a_delay_holds(sandbox):
    sandbox.control("POST", "/faults", json={"kind": "me", "delay_seconds": 300})

    with ThreadPoolExecutor(max_workers=1) as pool:
        held = pool.submit(sandbox.graph, "GET", "/me")
        wait_until(
            lambda: [c["status_code"] for c in sandbox.control("GET", "/calls").json()] == [None],
            what="the call held",
        )
        assert sandbox.control("DELETE", "/faults").status_code == 200

        assert held.result().status_code == 200
    assert [c["status_code"] for c in sandbox.control("GET", "/calls").json()] == [200]


def test_a_fault_can_answer_a_body_of_its_own_even_a_success(sandbox):
    customer = sandbox.messaged_customer()
    answer = {"recipient_id": customer["id"]}  # no message_id
    added = sandbox.control("POST", "/faults", json={"kind": "send", "status": 200, "body": answer})

    response = sandbox.send({"recipient": {"id": customer["id"]}, "message": {"text": "Hi"}})
    again = sandbox.send({"recipient": {"id": customer["id"]}, "message": {"text": "Hi"}})

    assert added.status_code == 201
    assert (response.status_code, response.json()) == (200, answer)
    assert [sent["response"] for sent in sandbox.control("GET", "/sent").json()] == [
        answer,
        again.json(),
    ]
    assert again.json()["message_id"]  # the fault played once


def test_a_fault_below_400_needs_a_body(sandbox):
    response = sandbox.control("POST", "/faults", json={"kind": "send", "status": 200})

    assert response.status_code == 422
    assert sandbox.control("GET", "/faults").json() == []


def test_latency_delays_every_graph_call(sandbox):
    sandbox.set_config(latency_ms=200)
    started = time.monotonic()
    sandbox.graph("GET", "/me")
    assert time.monotonic() - started >= 0.2


# Logs and reset


def test_calls_log_counts_graph_calls_by_kind(sandbox):
    customer = sandbox.messaged_customer()
    sandbox.graph("GET", "/me", params={"fields": "user_id"})
    sandbox.graph("GET", f"/{customer['id']}", params={"fields": "name"})
    sandbox.send({"recipient": {"id": customer["id"]}, "message": {"text": "Hi"}})
    sandbox.graph("GET", "/me", token="bad")
    sandbox.graph("GET", "/me/conversations")  # without platform=instagram
    sandbox.graph("GET", "/me/media")

    calls = sandbox.control("GET", "/calls").json()

    assert [(call["kind"], call["status_code"]) for call in calls] == [
        ("me", 200),
        ("profile", 200),
        ("send", 200),
        ("me", 400),
        ("conversations", 400),
        ("other", 400),
    ]
    assert calls[0]["method"] == "GET"
    assert calls[0]["path"] == "/v22.0/me"
    assert calls[0]["query"] == {"fields": "user_id"}
    [sent] = sandbox.control("GET", "/sent").json()
    assert sent["body"] == {"recipient": {"id": customer["id"]}, "message": {"text": "Hi"}}
    assert sent["response"]["recipient_id"] == customer["id"]
    assert sent["status_code"] == 200


def test_reset_forgets_everything_and_restores_the_config(sandbox):
    customer = sandbox.messaged_customer()
    sandbox.send({"recipient": {"id": customer["id"]}, "message": {"text": "Hi"}})
    sandbox.control("POST", "/faults", json={"kind": "send", "delay_seconds": 1})
    sandbox.set_config(echo_mode="off", latency_ms=5)

    settings = sandbox.control("POST", "/reset").json()

    assert settings["echo_mode"] == "after"
    assert settings["latency_ms"] == 0
    for path in ("/customers", "/calls", "/sent", "/faults"):
        assert sandbox.control("GET", path).json() == [], path


# Control API


def test_created_customer_gets_a_16_digit_igsid_and_a_username(sandbox):
    customer = sandbox.create_customer()

    assert len(customer["id"]) == 16
    assert customer["id"][0] in "123"
    assert customer["username"].startswith("customer_")
    assert customer["consented"] is False
    assert customer["last_inbound_ms"] is None
    assert sandbox.control("GET", "/customers").json() == [customer]


def test_control_routes_answer_404_for_unknown_customers(sandbox):
    for method, path, body in [
        ("GET", "/customers/1000000000000000", None),
        ("POST", "/customers/1000000000000000/messages", {"text": "Hi"}),
        ("GET", "/no-such-route", None),
    ]:
        response = sandbox.control(method, path, json=body)
        assert response.status_code == 404, path
        assert response.json()["code"] == "not_found"


def test_creating_a_customer_twice_is_a_conflict(sandbox):
    sandbox.create_customer(id="1000000000000001")
    response = sandbox.control("POST", "/customers", json={"id": "1000000000000001"})
    assert response.status_code == 409
    assert response.json()["code"] == "conflict"


def test_customer_message_is_delivered_signed_and_shaped_like_meta(sandbox, receiver):
    customer = sandbox.create_customer()

    result = sandbox.customer_writes(customer["id"], text="Привет! Do you ship? 👋")

    assert result["delivery"] == {"status_code": 200, "body": "EVENT_RECEIVED", "error": None}
    [webhook] = receiver.deliveries
    # Meta escapes non-ASCII as \uXXXX; the signature covers exactly these bytes.
    assert webhook.body.isascii()
    assert b"\\u041f" in webhook.body
    assert webhook.body == encode(result["payload"])
    item = only_item(signed_json(webhook))
    assert item["sender"] == {"id": customer["id"]}
    assert item["recipient"] == {"id": ACCOUNT_ID}
    assert abs(item["timestamp"] - now_ms()) < 60_000
    assert item["message"] == {"mid": result["mid"], "text": "Привет! Do you ship? 👋"}
    assert result["mid"].startswith(MID_PREFIX)
    stored = sandbox.control("GET", f"/customers/{customer['id']}").json()
    assert stored["consented"] is True
    assert stored["last_inbound_ms"] == item["timestamp"]


def test_customer_message_with_attachments_reply_and_quick_reply(sandbox, receiver):
    customer = sandbox.create_customer()

    result = sandbox.customer_writes(
        customer["id"],
        text="Track my order",
        attachments=[{"type": "image"}, {"type": "ig_reel", "payload": {"reel_video_id": "1"}}],
        reply_to={"mid": "aWdf…ZDZD"},
        quick_reply={"payload": "TRACK_ORDER"},
    )

    message = only_item(signed_json(receiver.wait_for(1)[0]))["message"]
    assert message == result["payload"]["entry"][0]["messaging"][0]["message"]
    image, reel = message["attachments"]
    assert image["type"] == "image"
    assert image["payload"]["url"].startswith(f"{sandbox.url}/ig_messaging_cdn/?asset_id=")
    assert reel == {"type": "ig_reel", "payload": {"reel_video_id": "1"}}
    assert message["reply_to"] == {"mid": "aWdf…ZDZD"}
    assert message["quick_reply"] == {"payload": "TRACK_ORDER"}


def test_customer_message_needs_text_or_attachments(sandbox):
    customer = sandbox.create_customer()
    response = sandbox.control("POST", f"/customers/{customer['id']}/messages", json={})
    assert response.status_code == 422


def test_unreachable_service_is_reported_not_raised(sandbox):
    customer = sandbox.create_customer()
    sandbox.set_config(webhook_url="http://127.0.0.1:9/webhook")

    result = sandbox.customer_writes(customer["id"])

    assert result["delivery"]["status_code"] is None
    assert "ConnectionError" in result["delivery"]["error"]


def test_pushing_an_arbitrary_webhook_signed_or_not(sandbox, receiver):
    reaction = {
        "object": "instagram",
        "entry": [
            {"time": 1, "id": ACCOUNT_ID, "messaging": [{"reaction": {"action": "unreact"}}]}
        ],
    }

    signed = sandbox.control("POST", "/webhooks", json={"payload": reaction}).json()
    unsigned = sandbox.control(
        "POST", "/webhooks", json={"payload": reaction, "sign": False}
    ).json()

    assert signed["status_code"] == unsigned["status_code"] == 200
    first, second = receiver.wait_for(2)
    assert signed_json(first) == reaction
    assert "x-hub-signature-256" not in second.headers


def test_deliver_returns_connection_errors():
    result = deliver(url="http://127.0.0.1:9/webhook", payload={}, secret="s", timeout=1)
    assert result.status_code is None
    assert result.error
