"""Fault drills of events out (run by `python -m bench.faults`, see its docstring):

- events-kill-9: a service with a subscribed webhook endpoint is killed with SIGKILL while
  deliveries stream in (intake in flight, deliveries to the endpoint in flight), restarted,
  and Meta's retries of the unacknowledged deliveries are sent: every acknowledged message's
  `message.received` event reaches the endpoint at least once, none is lost;
- events-replicas: two processes on one database deliver to one endpoint: every event is
  attempted once (the endpoint answers 200: no event arrives twice) and the attempts the
  database recorded are the requests the endpoint got.
"""

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import requests

from bench import database
from bench.processes import Process, free_port
from bench.receiver import CountingReceiver
from bench.stack import API_HEADERS, base_url, start_service

if TYPE_CHECKING:
    from bench.faults import DrillResult, Drills

# Short retries and leases: a drill must see the killed process's claims expire.
EVENT_OVERRIDES = {
    "PROFILE_WORKER_ENABLED": "false",
    "EVENTS_ALLOW_PRIVATE_URLS": "true",
    "EVENTS_TIMEOUT_SECONDS": "2",
    "EVENTS_RETRY_SCHEDULE": "0.5,1,1,2,2,5,5",
}
DELIVERED_WITHIN_SECONDS = 90.0


def subscribe(url: str, receiver: CountingReceiver) -> str:
    response = requests.post(
        f"{url}/api/v1/webhook-endpoints",
        json={"url": receiver.url, "event_types": ["message.received"]},
        headers=API_HEADERS,
        timeout=10,
    )
    response.raise_for_status()
    endpoint_id: str = response.json()["id"]
    return endpoint_id


def wait_for(condition: Callable[[], bool], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    return condition()


def events_kill_9(drills: "Drills") -> "DrillResult":
    from bench.faults import DeliveryStream, DrillResult, check_stored, redeliver

    drills.fresh()
    sandbox = drills.sandbox()
    receiver = CountingReceiver()
    port = free_port()

    def service() -> Process:
        return start_service(
            drills.processes,
            database_url=drills.database_url,
            graph_url=sandbox.url,
            port=port,
            overrides=EVENT_OVERRIDES,
            cpus=None,
        )

    try:
        process = service()
        url = base_url(process)
        subscribe(url, receiver)
        stream = DeliveryStream(lambda: url, prefix="evkill").start()
        time.sleep(3)
        process.kill()
        drills.say(
            f"  killed the service with SIGKILL after {receiver.received()} event deliveries"
        )
        drills.processes.stop(process)
        time.sleep(1)
        restarted = service()
        time.sleep(3)
        stream.stop()
        problems: list[str] = []
        retried = redeliver(base_url(restarted), stream.unacknowledged)
        everything = [outcome.mid for outcome in stream.outcomes]
        counts: dict[str, Any] = {"answers": dict(stream.results())}
        counts.update(
            check_stored(drills.engine, prefix="evkill", acknowledged=everything, problems=problems)
        )
        counts["redelivered (Meta's retry)"] = dict(retried)
        stored = set(everything)
        delivered = wait_for(
            lambda: stored <= set(receiver.mids()), seconds=DELIVERED_WITHIN_SECONDS
        )
        got = receiver.mids()
        missing = sorted(stored - set(got))
        counts["events delivered (distinct messages)"] = len(set(got) & stored)
        counts["delivered more than once (at least once: allowed)"] = sum(
            1 for mid in stored if got[mid] > 1
        )
        counts["missing"] = len(missing)
        if not delivered:
            problems.append(f"{len(missing)} stored messages never reached the endpoint")
        return DrillResult("events-kill-9", not problems, counts, problems)
    finally:
        receiver.close()
        drills.processes.stop_all()


def events_replicas(drills: "Drills") -> "DrillResult":
    from bench.faults import DeliveryStream, DrillResult

    drills.fresh()
    sandbox = drills.sandbox()
    receiver = CountingReceiver()
    try:
        first, second = (
            start_service(
                drills.processes,
                database_url=drills.database_url,
                graph_url=sandbox.url,
                overrides=EVENT_OVERRIDES,
                cpus=None,
                name=name,
            )
            for name in ("service", "second service")
        )
        subscribe(base_url(first), receiver)
        urls = [base_url(first), base_url(second)]
        turn = iter(range(10**9))
        stream = DeliveryStream(lambda: urls[next(turn) % 2], prefix="evrep").start()
        time.sleep(5)
        stream.stop()
        acknowledged = set(stream.acknowledged)
        wait_for(lambda: acknowledged <= set(receiver.mids()), seconds=DELIVERED_WITHIN_SECONDS)
        time.sleep(1)  # anything delivered twice would have arrived by now
        attempts = database.count(
            drills.engine, "SELECT coalesce(sum(attempts), 0) FROM event_deliveries"
        )
        got = receiver.event_ids()
        twice = {event_id: n for event_id, n in got.items() if n > 1}
        problems: list[str] = []
        if twice:
            problems.append(f"{len(twice)} events attempted more than once: {list(twice)[:3]}")
        missing = acknowledged - set(receiver.mids())
        if missing:
            problems.append(f"{len(missing)} acknowledged messages never reached the endpoint")
        if attempts != sum(got.values()):
            problems.append(f"{attempts} attempts recorded, {sum(got.values())} received")
        counts = {
            "acknowledged deliveries (alternating between the two)": len(acknowledged),
            "events received": len(got),
            "received more than once": len(twice),
            "attempts recorded": attempts,
        }
        return DrillResult("events-replicas", not problems, counts, problems)
    finally:
        receiver.close()
        drills.processes.stop_all()
