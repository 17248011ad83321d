"""`GET /user`: a profile, cached with a TTL, README sample 5's shape."""

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from app.models import User
from tests.conftest import StartService
from tests.helpers import (
    ACCOUNT_ID,
    ServiceClient,
    add_fault,
    graph_calls,
    new_customer,
)
from tests.stack import SharedService

SAMPLE_5_KEYS = {
    "id",
    "username",
    "name",
    "profile_pic",
    "follower_count",
    "is_user_follow_business",
    "is_business_follow_user",
}


@pytest.mark.parametrize("path", ["/user", "/user/"])
def test_profile_has_sample_5s_shape_and_is_cached(
    api: ServiceClient, db: Session, anna: dict, path: str
) -> None:
    response = api.get(path, params={"user_id": anna["id"]})

    assert response.status_code == 200
    assert response.json() == {
        "id": anna["id"],
        "username": "anna_k",
        "name": "Anna K",
        "profile_pic": "https://cdn.test/anna.jpg",
        "follower_count": 321,
        "is_user_follow_business": True,
        "is_business_follow_user": False,
    }
    assert set(response.json()) == SAMPLE_5_KEYS
    user = db.get(User, anna["id"])
    assert user is not None
    assert (user.username, user.profile_status, user.follower_count) == ("anna_k", "ok", 321)
    assert user.fetched_at is not None


def test_a_fresh_cached_profile_needs_no_graph_api_call(
    api: ServiceClient, meta: ServiceClient, anna: dict
) -> None:
    assert api.get("/user", params={"user_id": anna["id"]}).status_code == 200
    calls = len(graph_calls(meta, "profile"))

    assert api.get("/user", params={"user_id": anna["id"]}).status_code == 200

    assert len(graph_calls(meta, "profile")) == calls


def test_a_stale_profile_is_fetched_again(
    start_service: StartService,
    service: SharedService,
    meta: ServiceClient,
    db: Session,
    anna: dict,
) -> None:
    service.pause_workers()  # its profile fetcher would fetch the profile the TTL of 0 makes due
    server = start_service(profile_cache_ttl_seconds=0, profile_worker_enabled=False)
    with ServiceClient(server.url) as client:
        assert client.get("/user", params={"user_id": anna["id"]}).status_code == 200
        first_fetch = db.get(User, anna["id"]).fetched_at
        calls = len(graph_calls(meta, "profile"))

        assert client.get("/user", params={"user_id": anna["id"]}).status_code == 200

    assert len(graph_calls(meta, "profile")) == calls + 1
    db.expire_all()
    assert db.get(User, anna["id"]).fetched_at > first_fetch


def test_a_stale_profile_is_served_when_instagram_fails(
    start_service: StartService, service: SharedService, meta: ServiceClient, anna: dict
) -> None:
    service.pause_workers()  # its profile fetcher would fetch the profile the TTL of 0 makes due
    server = start_service(profile_cache_ttl_seconds=0, profile_worker_enabled=False)
    with ServiceClient(server.url) as client:
        assert client.get("/user", params={"user_id": anna["id"]}).status_code == 200
        add_fault(meta, kind="profile", status=500, error={"message": "down", "code": 2}, times=5)

        response = client.get("/user", params={"user_id": anna["id"]})

    assert response.status_code == 200
    assert response.json()["username"] == "anna_k"
    # Instagram was asked (the TTL of 0 made the profile stale) and failed every try.
    assert graph_calls(meta, "profile")[-1]["status_code"] == 500


def test_a_user_who_never_wrote_is_a_404_and_marked_consent_required(
    api: ServiceClient, meta: ServiceClient, db: Session
) -> None:
    stranger = new_customer(meta, username="stranger")
    # The service knows the id (e.g. from an echo), but Instagram wants the user's consent.
    assert api.get("/user", params={"user_id": stranger["id"]}).status_code == 404
    db.add(User(id=stranger["id"], profile_status="ok", username="old_name"))
    db.commit()

    response = api.get("/user", params={"user_id": stranger["id"]})

    assert response.status_code == 404
    body = response.json()
    assert body["code"] == "user_not_found"
    assert "has not messaged the business" in body["detail"]
    db.expire_all()
    assert db.get(User, stranger["id"]).profile_status == "consent_required"


def test_an_unknown_id_is_a_404_and_stores_nothing(api: ServiceClient, db: Session) -> None:
    response = api.get("/user", params={"user_id": "1999999999999999"})

    assert response.status_code == 404
    assert response.json()["code"] == "user_not_found"
    assert db.get(User, "1999999999999999") is None


def test_the_business_account_profile_comes_from_me(api: ServiceClient) -> None:
    response = api.get("/user", params={"user_id": ACCOUNT_ID})

    assert response.status_code == 200
    assert (response.json()["id"], response.json()["username"]) == (ACCOUNT_ID, "sandbox_business")


def test_an_invalid_token_is_a_502_saying_so(
    start_service: StartService, meta: ServiceClient
) -> None:
    server = start_service(instagram_user_token="IGAA-revoked", profile_worker_enabled=False)
    not_cached = new_customer(meta, username="bob")
    with ServiceClient(server.url) as client:
        response = client.get("/user", params={"user_id": not_cached["id"]})

    assert response.status_code == 502
    body = response.json()
    assert body["code"] == "instagram_token_invalid"
    assert "INSTAGRAM_USER_TOKEN" in body["detail"]
    assert "IGAA-revoked" not in response.text


def test_instagram_rate_limit_is_a_429_with_retry_after(
    api: ServiceClient, meta: ServiceClient
) -> None:
    not_cached = new_customer(meta, username="bob")
    add_fault(meta, kind="profile", error={"message": "Calls exceed rate limit", "code": 613})

    response = api.get("/user", params={"user_id": not_cached["id"]})

    assert response.status_code == 429
    assert response.json()["code"] == "instagram_rate_limited"
    assert int(response.headers["Retry-After"]) > 0


def test_instagram_unreachable_is_a_503(start_service: StartService, meta: ServiceClient) -> None:
    server = start_service(instagram_graph_url="http://127.0.0.1:9", instagram_get_retries=0)
    not_cached = new_customer(meta, username="bob")
    with ServiceClient(server.url) as client:
        response = client.get("/user", params={"user_id": not_cached["id"]})

    assert response.status_code == 503
    assert response.json()["code"] == "instagram_unreachable"


@pytest.mark.parametrize("params", [{}, {"user_id": "me"}, {"user_id": "1/../me"}], ids=str)
def test_bad_user_ids_are_422(service_in_process: TestClient, params: dict) -> None:
    response = service_in_process.get("/user", params=params)

    assert response.status_code == 422
    assert response.json()["code"] == "validation_error"
