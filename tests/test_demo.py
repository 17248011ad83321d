"""`fab demo` starts a working service and sandbox, prints what to try, and leaves nothing
running."""

import socket
from pathlib import Path

import pytest
import requests

from app.sandbox.demo import DATABASE_FILE, DemoError, DemoResult, run_demo

# Each starts the sandbox and the service as processes of their own.
pytestmark = pytest.mark.slow


def free_ports(count: int) -> list[int]:
    """Ports nothing listens on now (bound to port 0 together, so they differ)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def is_listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def test_the_printed_curl_lines_work_on_anna_and_stop_leaves_nothing(
    tmp_path: Path,
) -> None:
    port, sandbox_port = free_ports(2)
    printed: list[str] = []
    demo = run_demo(
        port=port, sandbox_port=sandbox_port, workdir=tmp_path, wait=False, out=printed.append
    )
    try:
        check_the_printed_instructions(demo, printed)
        check_the_demo_over_http(demo, tmp_path=tmp_path)
    finally:
        demo.stop()

    assert [process.popen.poll() is not None for process in demo.processes] == [True, True]
    assert not is_listening(port)
    assert not is_listening(sandbox_port)


def check_the_printed_instructions(demo: DemoResult, printed: list[str]) -> None:
    """Short, and pointing at anna."""
    text = "\n".join(printed)
    anna_id = demo.customers["anna_demo"]["id"]
    key = f"-H 'Authorization: Bearer {demo.api_key}'"

    assert len(demo.api_key) >= 32
    assert f"curl {key} '{demo.service_url}/messages?user_id={anna_id}'" in text
    assert f"curl {key} '{demo.service_url}/user?user_id={anna_id}'" in text
    assert f"{key} '{demo.service_url}/message/send?user_id={anna_id}'" in text
    assert f"'{demo.sandbox_url}/_sandbox/customers/{anna_id}/messages'" in text
    assert f"{demo.service_url}/docs" in text
    assert len(printed) <= 26


def check_the_demo_over_http(demo: DemoResult, *, tmp_path: Path) -> None:
    """What the printed curl lines do: history and profile of anna, a reply to her."""
    anna = demo.customers["anna_demo"]
    key = {"Authorization": f"Bearer {demo.api_key}"}

    unkeyed = requests.get(
        f"{demo.service_url}/messages", params={"user_id": anna["id"]}, timeout=10
    )
    history = requests.get(
        f"{demo.service_url}/messages", params={"user_id": anna["id"]}, headers=key, timeout=10
    )
    profile = requests.get(
        f"{demo.service_url}/user", params={"user_id": anna["id"]}, headers=key, timeout=10
    )
    sent = requests.post(
        f"{demo.service_url}/message/send",
        params={"user_id": anna["id"]},
        json={"message": {"text": "Yes, size M is in stock!"}},
        headers=key,
        timeout=10,
    )

    assert unkeyed.status_code == 401, "the demo's API is not open"

    assert history.status_code == 200, history.text
    assert history.json() == [
        {
            "sender_username": "anna_demo",
            "recipient_username": "sandbox_business",
            "text": "Hi! Is the blue jacket still available?",
        },
        {
            "sender_username": "anna_demo",
            "recipient_username": "sandbox_business",
            "text": "Size M, if you have it.",
        },
    ]
    assert profile.status_code == 200, profile.text
    assert profile.json()["username"] == "anna_demo"
    assert profile.json()["name"] == "Anna Demo"
    assert sent.status_code == 200, sent.text
    assert sent.json()["message_id"]
    [send_call] = requests.get(f"{demo.sandbox_url}/_sandbox/sent", timeout=10).json()
    assert send_call["body"]["recipient"] == {"id": anna["id"]}
    assert demo.database == tmp_path / DATABASE_FILE


def test_a_taken_port_fails_before_anything_starts(tmp_path: Path) -> None:
    [sandbox_port] = free_ports(1)
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = squatter.getsockname()[1]

        with pytest.raises(DemoError, match=f"port {taken} is already in use"):
            run_demo(port=taken, sandbox_port=sandbox_port, workdir=tmp_path, wait=False)

    assert not is_listening(sandbox_port)


def test_a_process_dying_at_startup_stops_the_other_and_shows_its_output(tmp_path: Path) -> None:
    # Both on one port: whichever binds second dies with "address already in use".
    [port] = free_ports(1)
    printed: list[str] = []

    with pytest.raises(DemoError, match="exited with code"):
        run_demo(port=port, sandbox_port=port, workdir=tmp_path, wait=False, out=printed.append)

    assert "address already in use" in "\n".join(printed).lower()
    assert not is_listening(port)
