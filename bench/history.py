"""The backfill scenario: how fast the history sync imports from the Conversations API, with
the sandbox's 2 calls/s limit and the service's pacing switched off (what the service's own
work costs; against Meta, 2 calls a second bound it: about 1,700 messages a minute for
conversations of 60)."""

import time
from datetime import datetime

import requests

from bench.load import LoadResult
from bench.pools import customer_id
from bench.processes import BenchError, UsageMeter
from bench.scenarios import Context, Row
from bench.stack import ACCOUNT_ID, API_HEADERS, base_url, start_sandbox, start_service

CONVERSATIONS = 50
MESSAGES_PER_CONVERSATION = 60  # 20 come with their content, 40 as placeholders
HISTORY_START_MS = 1_735_689_600_000  # 2025-01-01
TIMEOUT_SECONDS = 300


def backfill(context: Context) -> Row:
    context.prepare(("empty",), lambda: None)
    context.written()
    sandbox = start_sandbox(context.processes, webhook_url="http://127.0.0.1:9/webhook")
    sandbox.control("PUT", "/config", json={"conversations_rate_limit": False})
    context.say(
        f"  loading {CONVERSATIONS} conversations of {MESSAGES_PER_CONVERSATION} messages "
        "into the sandbox"
    )
    for number in range(CONVERSATIONS):
        customer = customer_id(700_000 + number)
        sandbox.control("POST", "/customers", json={"id": customer, "username": f"old_{number}"})
        for message in range(MESSAGES_PER_CONVERSATION):
            sandbox.control(
                "POST",
                f"/customers/{customer}/messages",
                json={
                    "text": f"old message {message}",
                    "timestamp_ms": HISTORY_START_MS + number * 86_400_000 + message * 60_000,
                    "deliver": False,
                },
            )
    service = start_service(
        context.processes,
        database_url=context.database_url,
        graph_url=sandbox.url,
        overrides={"SYNC_CALLS_PER_SECOND": "0", "PROFILE_WORKER_ENABLED": "false"},
        extra_args=context.options.uvicorn_args,
    )
    pid, url = service.pid, base_url(service)
    try:
        with UsageMeter(pid) as meter:
            started = time.monotonic()
            job = _run(url)
            wall = time.monotonic() - started
        seconds = _seconds(job)
        calls = len(sandbox.calls("conversations"))
    finally:
        context.processes.stop_all()
    assert meter.usage is not None
    imported = job["messages_imported"] + job["placeholders_imported"]
    load = LoadResult(
        requests=imported,
        seconds=seconds,
        p50_ms=0.0,
        p90_ms=0.0,
        p99_ms=0.0,
        max_ms=0.0,
        statuses={"2xx": imported},
        errors={},
        sent=imported,
        pool_lines=imported,
        pool_used=imported,
    )
    row = Row(
        scenario="backfill",
        description="history backfill from the Conversations API (sandbox, unpaced)",
        load=load,
        usage=meter.usage,
    )
    row.notes.append(
        f"messages imported per second: {job['messages_imported']:,} with content + "
        f"{job['placeholders_imported']:,} placeholders from {job['conversations_done']} "
        f"conversations in {seconds:.1f} s ({wall:.1f} s from the POST), {calls} Conversations "
        "API calls (no latency columns)"
    )
    expected = CONVERSATIONS * MESSAGES_PER_CONVERSATION
    if imported != expected or job["conversations_failed"]:
        row.problems.append(
            f"imported {imported} of {expected}, {job['conversations_failed']} conversations failed"
        )
    return row


def _seconds(job: dict[str, object]) -> float:
    """How long the job ran, by its own clock (started → finished)."""
    started = datetime.fromisoformat(str(job["started_at"]).replace("Z", "+00:00"))
    finished = datetime.fromisoformat(str(job["finished_at"]).replace("Z", "+00:00"))
    return (finished - started).total_seconds()


def _run(url: str) -> dict[str, object]:
    """Start a backfill through the API and wait for it to end; its last state."""
    started = requests.post(
        f"{url}/api/v1/accounts/{ACCOUNT_ID}/sync", headers=API_HEADERS, json={}, timeout=30
    )
    if started.status_code != 202:
        raise BenchError(f"backfill refused: {started.status_code} {started.text}")
    location = f"{url}{started.headers['Location']}"
    deadline = time.monotonic() + TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        job: dict[str, object] = requests.get(location, headers=API_HEADERS, timeout=30).json()
        if job["status"] in ("done", "failed"):
            return job
        time.sleep(0.05)
    raise BenchError(f"the backfill did not end within {TIMEOUT_SECONDS} s")
