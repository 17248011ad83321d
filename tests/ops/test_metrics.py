"""`/metrics`: Prometheus text behind the API key, and every metric moving with its event.

Counters are per process and the tests build many apps in one, so they compare a scrape
before and after the event."""

import copy
import time
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from tests import stack as shared
from tests.conftest import InProcess, StartService
from tests.helpers import (
    ACCOUNT_ID,
    API_KEY,
    ServiceClient,
    add_fault,
    customer_writes,
    encode,
    example,
    new_customer,
    signed_headers,
    text_message,
)
from tests.ops.conftest import update_sandbox_tokens
from tests.stack import SharedService

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(client: ServiceClient | TestClient) -> Samples:
    response = client.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


class Scrapes:
    """The difference a block of test code makes to the metrics."""

    def __init__(self, client: ServiceClient | TestClient) -> None:
        self.client = client
        self.before = scrape(client)
        self.after: Samples = {}

    def moved(self, name: str, **labels: str) -> float:
        if not self.after:
            self.after = scrape(self.client)
        return value(self.after, name, **labels) - value(self.before, name, **labels)


def events_moved(watch: Scrapes, *kinds: tuple[str, str]) -> list[float]:
    """How far insta_webhook_events_total moved for the account, per (type, outcome)."""
    return [
        watch.moved("insta_webhook_events_total", account=ACCOUNT_ID, type=type_, outcome=outcome)
        for type_, outcome in kinds
    ]


@pytest.fixture
def client(service: SharedService) -> Iterator[ServiceClient]:
    with ServiceClient(service.url) as made:
        yield made


def test_metrics_need_the_api_key_when_one_is_set(
    in_process: InProcess, service_environment: dict[str, Any]
) -> None:
    guarded = in_process(service_environment, api_key=API_KEY)
    refused = guarded.get("/metrics")
    guarded.headers["Authorization"] = f"Bearer {API_KEY}"
    samples = scrape(guarded)

    assert refused.status_code == 401
    assert refused.json()["code"] == "unauthorized"
    assert value(samples, "insta_database_up") == 1


def test_metrics_stay_out_of_the_openapi_schema(service_in_process: TestClient) -> None:
    paths = service_in_process.get("/openapi.json").json()["paths"]

    assert "/health" in paths
    assert "/metrics" not in paths


def test_delivery_and_event_counters_move(client: ServiceClient) -> None:
    watch = Scrapes(client)  # a first scrape may take seconds on a busy machine: then the clock
    delivery = text_message(mid="m-metrics", timestamp=int(time.time() * 1000) - 3000)

    assert client.deliver(delivery).status_code == 200
    assert client.deliver(delivery).status_code == 200  # Meta retries byte for byte
    # The same events again in deliveries of their own (Meta batches differently).
    delivery["entry"][0]["time"] += 1
    assert client.deliver(delivery).status_code == 200
    reaction = example("reaction_react")
    assert client.deliver(reaction).status_code == 200
    reaction["entry"][0]["time"] += 1
    assert client.deliver(reaction).status_code == 200

    assert watch.moved("insta_webhook_deliveries_total", outcome="applied") == 4
    assert watch.moved("insta_webhook_deliveries_total", outcome="duplicate") == 1
    assert events_moved(watch, ("message", "applied"), ("message", "duplicate")) == [1, 1]
    assert events_moved(watch, ("reaction", "applied"), ("reaction", "duplicate")) == [1, 1]
    assert watch.moved("insta_webhook_lag_seconds_count") == 4
    # The message was 3 seconds old: its lag falls in the 5-second bucket, not the 2-second
    # one (and the reaction of the example is a year old).
    assert watch.moved("insta_webhook_lag_seconds_bucket", le="5.0") >= 1
    assert watch.moved("insta_webhook_lag_seconds_bucket", le="2.0") == 0


def test_failed_ignored_and_refused_deliveries_are_counted(client: ServiceClient) -> None:
    broken = text_message(mid="m-broken")
    del broken["entry"][0]["messaging"][0]["sender"]
    optin = copy.deepcopy(example("text"))
    item = optin["entry"][0]["messaging"][0]
    del item["message"]
    item["optin"] = {"ref": "x"}
    watch = Scrapes(client)

    assert client.deliver(broken).status_code == 200  # kept for replay
    assert client.deliver(optin).status_code == 200  # a kind kept raw only
    assert client.deliver(example("text"), secret="wrong-secret").status_code == 403
    missing = client.post("/webhook", data=b"{}", headers={"Content-Type": "application/json"})
    assert missing.status_code == 403
    assert client.deliver(b"{not json").status_code == 400

    assert watch.moved("insta_webhook_deliveries_total", outcome="failed") == 1
    assert events_moved(watch, ("message", "failed"), ("unknown", "ignored")) == [1, 1]
    assert watch.moved("insta_webhook_signature_failures_total", reason="wrong") == 1
    assert watch.moved("insta_webhook_signature_failures_total", reason="missing") == 1
    assert watch.moved("insta_webhook_deliveries_total", outcome="invalid_signature") == 2
    assert watch.moved("insta_webhook_deliveries_total", outcome="malformed_json") == 1
    assert value(watch.after, "insta_background_backlog", queue="failed_deliveries") == 1


def test_a_delivery_without_an_app_secret_is_counted(
    in_process: InProcess, service_environment: dict[str, Any]
) -> None:
    client = in_process(service_environment, instagram_app_secret=None)
    watch = Scrapes(client)
    raw = encode(example("text"))
    assert client.post("/webhook", content=raw, headers=signed_headers(raw)).status_code == 403

    assert watch.moved("insta_webhook_signature_failures_total", reason="no_app_secret") == 1


def test_graph_calls_are_counted_by_endpoint_outcome_and_code(
    start_service: StartService, meta: ServiceClient
) -> None:
    server = start_service(instagram_read_timeout=0.5, profile_worker_enabled=False)
    customer = new_customer(meta, username="anna")
    customer_writes(meta, customer["id"], "hello")
    endpoint = "POST /v25.0/me/messages"

    def send() -> int:
        response = client.post(
            "/message/send", params={"user_id": customer["id"]}, json={"message": {"text": "x"}}
        )
        return response.status_code

    with ServiceClient(server.url) as client:
        watch = Scrapes(client)
        assert send() == 200
        add_fault(meta, kind="send", error={"message": "limit", "code": 613})
        assert send() == 429
        add_fault(meta, kind="send", delay_seconds=60)  # held until the sandbox's reset
        assert send() == 504
        update_sandbox_tokens(meta, revoked=True)
        assert send() == 502

        def calls(outcome: str, code: str = "") -> float:
            labels = {"account": ACCOUNT_ID, "endpoint": endpoint, "outcome": outcome, "code": code}
            return watch.moved("insta_graph_requests_total", **labels)

        assert calls("ok") == calls("error", "613") == calls("timeout") == 1
        assert calls("error", "190") == 1
        assert watch.moved("insta_graph_request_duration_seconds_count", endpoint=endpoint) == 4
        assert value(watch.after, "insta_token_invalid", account=ACCOUNT_ID) == 1


def test_an_unreachable_graph_api_is_counted(
    in_process: InProcess, service_environment: dict[str, Any]
) -> None:
    client = in_process(service_environment, instagram_graph_url=shared.NOWHERE_URL)
    watch = Scrapes(client)
    assert client.get("/user", params={"user_id": "1999999999999998"}).status_code == 503

    endpoint = "GET /v25.0/{id}"
    assert (
        watch.moved(
            "insta_graph_requests_total",
            account=ACCOUNT_ID,
            endpoint=endpoint,
            outcome="unreachable",
            code="",
        )
        == 1
    )


def test_http_requests_are_counted_and_timed_by_route(client: ServiceClient) -> None:
    watch = Scrapes(client)

    client.get("/health")
    client.get("/messages", params={"user_id": "1187429836452190"})
    client.get("/no/such/path")

    def served(route: str, status: str) -> float:
        return watch.moved("insta_http_requests_total", method="GET", route=route, status=status)

    assert served("/health", "200") == 1
    assert served("/messages", "404") == 1
    assert served("<unmatched>", "404") == 1
    timed = watch.moved("insta_http_request_duration_seconds_count", method="GET", route="/health")
    assert timed == 1


def test_state_gauges_follow_the_database(client: ServiceClient) -> None:
    before = scrape(client)
    assert client.deliver(text_message(mid="m-gauges")).status_code == 200
    after = scrape(client)

    assert value(before, "insta_database_up") == 1
    assert value(before, "insta_schema_at_head") == 1
    assert 59 < value(before, "insta_token_days_left", account=ACCOUNT_ID) <= 60
    assert value(before, "insta_token_invalid", account=ACCOUNT_ID) == 0
    assert ("insta_webhook_last_received_timestamp_seconds", frozenset()) not in before
    assert value(after, "insta_webhook_last_received_timestamp_seconds") == pytest.approx(
        time.time(), abs=60
    )
    assert ("insta_background_backlog", frozenset({("queue", "profiles")})) in after


def test_the_profile_backlog_gauge_counts_profiles_due(quiet_service: SharedService) -> None:
    with ServiceClient(quiet_service.url) as client:
        assert client.deliver(text_message(mid="m-backlog")).status_code == 200

        assert value(scrape(client), "insta_background_backlog", queue="profiles") == 2


def test_a_database_that_is_down_shows_in_the_metrics(database_down: TestClient) -> None:
    samples = scrape(database_down)

    assert value(samples, "insta_database_up") == 0
    assert not [name for name, _ in samples if name == "insta_token_days_left"]
