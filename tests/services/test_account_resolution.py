"""Without INSTAGRAM_ACCOUNT_ID the IG_ID comes from /me, asked once at start by a thread of
its own: a slow Meta never holds request threads, a request that needs the id meanwhile gets
503 account_unresolved at once."""

from concurrent.futures import ThreadPoolExecutor

from tests.conftest import StartService
from tests.helpers import (
    ACCOUNT_ID,
    ServiceClient,
    add_fault,
    customer_writes,
    graph_calls,
    new_customer,
    wait_until,
)


def test_the_account_is_resolved_once_at_start(
    start_service: StartService, meta: ServiceClient
) -> None:
    server = start_service(instagram_account_id=None, profile_worker_enabled=False)

    wait_until(lambda: len(graph_calls(meta, "me")) == 1, what="the /me call at start")
    customer = new_customer(meta)
    customer_writes(meta, customer["id"])
    with ServiceClient(server.url) as api:
        sent = [
            api.post(f"/api/v1/conversations/{customer['id']}/messages", json={"text": f"{n}"})
            for n in range(3)
        ]

    assert [answer.status_code for answer in sent] == [201, 201, 201]
    assert {answer.json()["sender_id"] for answer in sent} == {ACCOUNT_ID}
    assert len(graph_calls(meta, "me")) == 1


def test_a_hanging_me_answers_503_quickly_and_holds_no_thread(
    start_service: StartService, meta: ServiceClient
) -> None:
    # Long enough that all eight sends (two rounds of four threads, up to 2 s each, after the
    # set-up) are answered while /me still hangs, even on a loaded machine.
    add_fault(meta, kind="me", delay_seconds=12)
    server = start_service(
        instagram_account_id=None, worker_threads=4, profile_worker_enabled=False
    )
    customer = new_customer(meta)
    customer_writes(meta, customer["id"])
    path = f"/api/v1/conversations/{customer['id']}/messages"

    with ServiceClient(server.url) as api, ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda n: api.post(path, json={"text": f"{n}"}), range(8)))
        health = api.get("/health")

    assert health.status_code == 200
    assert {answer.status_code for answer in answers} == {503}
    assert {answer.json()["code"] for answer in answers} == {"account_unresolved"}
    assert all(answer.headers["Retry-After"] for answer in answers)
    assert len(graph_calls(meta, "me")) == 1  # asked once, not once per waiting request

    with ServiceClient(server.url) as api:
        wait_until(
            lambda: api.post(path, json={"text": "later"}).status_code == 201,
            timeout=30,
            what="the send once /me answered",
        )
