"""Two service processes on one database, receiving the same deliveries at the same time:
every event stored once, no 5xx, and no profile fetched twice."""

import os
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.models import Message, Reaction, User
from app.sandbox import webhooks
from app.sandbox.server import BackgroundServer, bind_socket
from tests.helpers import (
    ACCOUNT_ID,
    APP_SECRET,
    USER_TOKEN,
    ServiceClient,
    encode,
    graph_calls,
    new_customer,
    signed_headers,
    wait_until,
)

REPO_ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with bind_socket() as sock:
        return sock.getsockname()[1]


@contextmanager
def service_process(*, database_url: str, graph_url: str, workdir: Path) -> Iterator[str]:
    """`uvicorn app.main:app` in a process of its own; yields its URL."""
    port = free_port()
    environment = {
        **{
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("INSTAGRAM_", "DB_", "DATABASE"))
        },
        "PYTHONPATH": str(REPO_ROOT),
        "DATABASE_URL": database_url,
        "INSTAGRAM_APP_SECRET": APP_SECRET,
        "INSTAGRAM_USER_TOKEN": USER_TOKEN,
        "INSTAGRAM_ACCOUNT_ID": ACCOUNT_ID,
        "INSTAGRAM_GRAPH_URL": graph_url,
        "ALLOW_OPEN_API": "true",
        "PROFILE_WORKER_IDLE_SECONDS": "0.05",
        "LOG_LEVEL": "WARNING",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "app.main:app", "--port", str(port), "--no-access-log"],
        cwd=workdir,
        env=environment,
    )
    url = f"http://127.0.0.1:{port}"

    def answering() -> bool:
        assert process.poll() is None, "the service process exited"
        try:
            return requests.get(f"{url}/health", timeout=1).ok
        except requests.ConnectionError:
            return False

    try:
        wait_until(answering, timeout=20, what="the service process answering")
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.mark.slow
def test_two_processes_store_every_event_once_and_fetch_every_profile_once(
    database_url: str, db: Session, sandbox: BackgroundServer, meta: ServiceClient, tmp_path: Path
) -> None:
    meta.put("/_sandbox/config", json={"latency_ms": 20})
    customers = [new_customer(meta)["id"] for _ in range(12)]
    for customer in customers:  # they wrote before: Instagram shares their profiles
        meta.post(f"/_sandbox/customers/{customer}/messages", json={"text": "hi", "deliver": False})
    deliveries = []
    for number in range(60):
        customer = customers[number % len(customers)]
        ids = {"account_id": ACCOUNT_ID, "customer_id": customer}
        mid = f"mid-{number}"
        items = [
            webhooks.message_item(
                **ids, mid=mid, timestamp_ms=1745923812000 + number, text=f"n{number}"
            )
        ]
        if number % 3 == 0:
            items.append(
                webhooks.reaction_item(
                    **ids,
                    mid=mid,
                    timestamp_ms=1745923900000 + number,
                    action="react",
                    reaction="like",
                )
            )
        deliveries.append(encode(webhooks.delivery(account_id=ACCOUNT_ID, items=items)))

    with (
        service_process(
            database_url=database_url, graph_url=sandbox.url, workdir=tmp_path
        ) as first,
        service_process(
            database_url=database_url, graph_url=sandbox.url, workdir=tmp_path
        ) as second,
    ):
        targets = [(url, body) for body in deliveries for url in (first, second)]

        def deliver(target: tuple[str, bytes]) -> int:
            url, body = target
            return requests.post(
                f"{url}/webhook", data=body, headers=signed_headers(body), timeout=30
            ).status_code

        with ThreadPoolExecutor(max_workers=16) as pool:
            statuses = list(pool.map(deliver, targets))

        assert statuses == [200] * len(targets)
        assert db.scalar(select(func.count()).select_from(Message)) == len(deliveries)
        assert db.scalar(select(func.count()).select_from(Reaction)) == len(range(0, 60, 3))

        def all_fetched() -> bool:
            db.expire_all()
            pending = db.scalar(
                select(func.count()).select_from(User).where(User.fetched_at.is_(None))
            )
            db.commit()
            return pending == 0

        wait_until(all_fetched, timeout=20, what="every profile fetched")

    fetched = [call["path"] for call in graph_calls(meta, "profile")]
    assert sorted(fetched) == sorted(f"/v25.0/{customer}" for customer in customers)
    assert len(graph_calls(meta, "me")) == 1  # the business account's profile, once
