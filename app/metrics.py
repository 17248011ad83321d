"""Prometheus metrics (prometheus-client), served at `/metrics`.

Counters and histograms count events as they happen, in one registry per process (the
prometheus-client idiom; production runs one service process per container, each scraped on
its own). Tests build many apps in one process, so they read differences, never absolute
values. State — token days left, backlog, last webhook — is read from the database at scrape
time into a fresh registry (see `state_metrics`), so it belongs to the app being scraped.
"""

from dataclasses import dataclass

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
)

# `*_created` series double the output and no dashboard reads them.
disable_created_metrics()  # type: ignore[no-untyped-call]

# A registry of this module's own (not prometheus-client's global one): re-importing the
# module builds new collectors instead of failing on duplicate names.
REGISTRY = CollectorRegistry()
ProcessCollector(registry=REGISTRY)

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
# Meta retries a delivery for hours: the lag runs from well under a second to a day.
LAG_BUCKETS = (0.5, 1, 2, 5, 10, 30, 60, 300, 900, 3600, 6 * 3600, 24 * 3600)

HTTP_REQUESTS = Counter(
    "insta_http_requests_total",
    "HTTP requests served, by route template and status code.",
    ["method", "route", "status"],
    registry=REGISTRY,
)
HTTP_LATENCY = Histogram(
    "insta_http_request_duration_seconds",
    "Time to serve an HTTP request, by route template.",
    ["method", "route"],
    buckets=LATENCY_BUCKETS,
    registry=REGISTRY,
)
WEBHOOK_DELIVERIES = Counter(
    "insta_webhook_deliveries_total",
    "Webhook POSTs by outcome: applied; failed (stored, an event kept for `fab replay`); "
    "duplicate (the same body again: stored once); invalid_signature; malformed_json.",
    ["outcome"],
    registry=REGISTRY,
)
WEBHOOK_SIGNATURE_FAILURES = Counter(
    "insta_webhook_signature_failures_total",
    "Webhook POSTs refused for their X-Hub-Signature-256: missing, wrong, or no app secret.",
    ["reason"],
    registry=REGISTRY,
)
WEBHOOK_EVENTS = Counter(
    "insta_webhook_events_total",
    "Webhook events by type and outcome: applied, duplicate (already stored: nothing "
    "changed), ignored (kept raw only), failed (kept for `fab replay`), pending (its account "
    "is not served yet: applied when it is added), by business account (entry.id).",
    ["account", "type", "outcome"],
    registry=REGISTRY,
)
WEBHOOK_LAG = Histogram(
    "insta_webhook_lag_seconds",
    "Time from an event (Meta's timestamp) to its storage here.",
    buckets=LAG_BUCKETS,
    registry=REGISTRY,
)
GRAPH_REQUESTS = Counter(
    "insta_graph_requests_total",
    "Graph API calls by business account (empty: not made for one), endpoint, outcome (ok, "
    "error, timeout, unreachable) and Meta's error code.",
    ["account", "endpoint", "outcome", "code"],
    registry=REGISTRY,
)
GRAPH_LATENCY = Histogram(
    "insta_graph_request_duration_seconds",
    "Time a Graph API call took, retries included, by endpoint.",
    ["endpoint"],
    buckets=LATENCY_BUCKETS,
    registry=REGISTRY,
)
EVENT_DELIVERIES = Counter(
    "insta_event_deliveries_total",
    "Event delivery attempts to webhook endpoints, by endpoint and outcome: succeeded, retry "
    "(failed, tried again later), given_up (the retry schedule spent), gone (410: disabled).",
    ["endpoint", "outcome"],
    registry=REGISTRY,
)
EVENT_DELIVERY_LAG = Histogram(
    "insta_event_delivery_lag_seconds",
    "Time from an event's creation to its successful delivery to an endpoint.",
    buckets=LAG_BUCKETS,
    registry=REGISTRY,
)
TOKEN_REFRESHES = Counter(
    "insta_token_refreshes_total",
    "Access token refreshes by business account and outcome (ok, failed).",
    ["account", "outcome"],
    registry=REGISTRY,
)

HISTORY_GAPS = Counter(
    "insta_history_gaps_total",
    "Messages Meta lists that the service did not have, by account: found, and filled with "
    "their content (a gap older than a thread's 20 newest messages stays a placeholder).",
    ["account", "outcome"],
    registry=REGISTRY,
)


@dataclass(frozen=True)
class StateSample:
    """What `/metrics` reads from the database at scrape time (None: unknown)."""

    database_up: bool
    schema_at_head: bool
    # By business account (IG_ID): days until its token expires, whether Meta rejected it.
    token_days_left: dict[str, float] | None = None
    token_invalid: dict[str, bool] | None = None
    profiles_due: int | None = None
    failed_deliveries: int | None = None
    event_backlog: dict[str, int] | None = None  # pending event deliveries by endpoint
    last_webhook_timestamp: float | None = None
    # Attachments waiting for the download worker (MEDIA_ARCHIVE on only).
    media_pending: int | None = None


def state_metrics(sample: StateSample) -> bytes:
    """The scrape-time gauges, in Prometheus text format."""
    registry = CollectorRegistry()

    def gauge(name: str, documentation: str, value: float | None) -> None:
        if value is not None:
            Gauge(name, documentation, registry=registry).set(value)

    gauge("insta_database_up", "1 when the database answers.", float(sample.database_up))
    gauge(
        "insta_schema_at_head",
        "1 when the database is migrated to the newest revision.",
        float(sample.schema_at_head),
    )
    by_account(
        registry,
        "insta_token_days_left",
        "Days until a business account's access token expires (negative: expired).",
        sample.token_days_left,
    )
    by_account(
        registry,
        "insta_token_invalid",
        "1 when Meta rejected a business account's access token (190): re-authentication needed.",
        None
        if sample.token_invalid is None
        else {account: float(invalid) for account, invalid in sample.token_invalid.items()},
    )
    backlog = Gauge(
        "insta_background_backlog",
        "Background work waiting: profiles due for a fetch, failed deliveries to replay.",
        ["queue"],
        registry=registry,
    )
    if sample.profiles_due is not None:
        backlog.labels(queue="profiles").set(sample.profiles_due)
    if sample.failed_deliveries is not None:
        backlog.labels(queue="failed_deliveries").set(sample.failed_deliveries)
    if sample.media_pending is not None:
        backlog.labels(queue="media").set(sample.media_pending)
    if sample.event_backlog is not None:
        events = Gauge(
            "insta_event_backlog",
            "Event deliveries still to make (pending, or events not yet fanned out), by endpoint.",
            ["endpoint"],
            registry=registry,
        )
        for endpoint, pending in sample.event_backlog.items():
            events.labels(endpoint=endpoint).set(pending)
    gauge(
        "insta_webhook_last_received_timestamp_seconds",
        "When the newest webhook delivery was stored (Unix time).",
        sample.last_webhook_timestamp,
    )
    return generate_latest(registry)


def by_account(
    registry: CollectorRegistry,
    name: str,
    documentation: str,
    values: dict[str, float] | None,
) -> None:
    """A gauge labelled by account (one series per account: bounded by their number)."""
    if not values:
        return
    gauge = Gauge(name, documentation, ["account"], registry=registry)
    for account, value in sorted(values.items()):
        gauge.labels(account=account).set(value)


def render(sample: StateSample) -> bytes:
    """Everything `/metrics` serves: the process's counters, then the scrape-time state."""
    return generate_latest(REGISTRY) + state_metrics(sample)
