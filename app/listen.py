"""`fab listen` (`python -m app.listen`): watch the service's events as they happen, like
`stripe listen`, and optionally forward each one, signed, to a local URL.

It reads `GET /api/v1/events/stream` (reconnecting with Last-Event-ID if the connection
drops), prints one line per event (seq, type, conversation, a summary) and, with
`--forward-to`, POSTs it there exactly as a webhook endpoint would receive it (Standard
Webhooks), signed with a secret made for this session and printed at start.
"""

import argparse
import json
import sys
import time
from collections.abc import Callable, Generator, Iterator
from contextlib import closing
from typing import Any

import requests

from app.services.events import signing

RECONNECT_SECONDS = 2.0
Out = Callable[[str], object]


def summary(event: dict[str, Any]) -> str:
    """One line saying what happened."""
    data = event.get("data") or {}
    message = data.get("message") or {}
    kind = event["type"]
    if kind in ("message.received", "message.sent", "message.updated", "message.failed"):
        what = _content(message)
        origin = f" ({data['origin']})" if data.get("origin") else ""
        return f"{what}{origin}"
    if kind == "message.deleted":
        return f"unsent {message.get('mid')}"
    if kind == "reaction.updated":
        reaction = data.get("reaction") or {}
        said = reaction.get("reaction") or "withdrawn"
        return f"{reaction.get('user_id')} reacted {said} to {reaction.get('mid')}"
    if kind == "conversation.read":
        return f"read up to {(data.get('read') or {}).get('mid')}"
    if kind == "profile.updated":
        user = data.get("user") or {}
        return f"@{user.get('username')} ({user.get('profile_status')})"
    if kind == "account.updated":
        token = (data.get("account") or {}).get("token") or {}
        return f"token {token.get('state')}"
    return json.dumps(data, ensure_ascii=False)[:80]


def _content(message: dict[str, Any]) -> str:
    if message.get("text"):
        return json.dumps(message["text"], ensure_ascii=False)
    attachments = message.get("attachments") or []
    if attachments:
        return "[" + ", ".join(str(a.get("type")) for a in attachments) + "]"
    return "[no text]"


def line_of(event: dict[str, Any]) -> str:
    conversation = event.get("conversation") or "-"
    return f"{event['seq']:>8}  {event['type']:<18} {conversation:<18} {summary(event)}"


def frames(response: requests.Response) -> Iterator[tuple[str, str, str]]:
    """(id, event, data) of each SSE event; comments skipped."""
    fields: dict[str, str] = {}
    for line in response.iter_lines(decode_unicode=True):
        raw = line.decode() if isinstance(line, bytes) else str(line)
        if raw.startswith(":"):
            continue
        if not raw:
            if "data" in fields:
                yield fields.get("id", ""), fields.get("event", "message"), fields["data"]
            fields = {}
            continue
        name, _, value = raw.partition(":")
        fields[name] = value.removeprefix(" ")


class Listener:
    """Follows the stream; forwards each event when told where."""

    def __init__(
        self,
        *,
        url: str,
        api_key: str | None,
        types: list[str] | None = None,
        forward_to: str | None = None,
        out: Out = print,
    ) -> None:
        self.url = url.rstrip("/")
        self.types = types
        self.forward_to = forward_to
        self.secret = signing.new_secret()
        self.out = out
        self.http = requests.Session()
        if api_key:
            self.http.headers["Authorization"] = f"Bearer {api_key}"
        self.last_seq: int | None = None

    def run(self, *, stop_after: int | None = None) -> int:
        """Follow the stream (reconnecting) until interrupted, or `stop_after` events."""
        shown = 0
        while stop_after is None or shown < stop_after:
            try:
                with closing(self._connect()) as stream:  # closed on `break` too
                    shown = self._follow(stream, shown=shown, stop_after=stop_after)
            except requests.RequestException as error:
                self.out(f"(stream interrupted: {type(error).__name__}; reconnecting)")
                time.sleep(RECONNECT_SECONDS)
        return shown

    def _follow(
        self, stream: Iterator[tuple[str, str, str]], *, shown: int, stop_after: int | None
    ) -> int:
        for _, kind, data in stream:
            if kind == "reset":
                self.out(f"(events were deleted by retention: going on after {data})")
                continue
            event = json.loads(data)
            self.last_seq = event["seq"]
            self.out(line_of(event))
            if self.forward_to:
                self.forward(event)
            shown += 1
            if stop_after is not None and shown >= stop_after:
                break
        return shown

    def _connect(self) -> Generator[tuple[str, str, str], None, None]:
        headers = {} if self.last_seq is None else {"Last-Event-ID": str(self.last_seq)}
        params = {"types": ",".join(self.types)} if self.types else {}
        with self.http.get(
            f"{self.url}/api/v1/events/stream",
            params=params,
            headers=headers,
            stream=True,
            timeout=(5, 60),  # a heartbeat comes every 15 s
        ) as response:
            if response.status_code != 200:
                raise SystemExit(
                    f"{self.url} answered {response.status_code}: {response.text[:200]}"
                )
            yield from frames(response)

    def forward(self, event: dict[str, Any]) -> None:
        """POST the event as a webhook endpoint would get it, signed with this session's
        secret."""
        assert self.forward_to is not None
        body, headers = signing.signed_delivery(event, signing_secrets=[self.secret])
        try:
            answer = self.http.post(self.forward_to, data=body, headers=headers, timeout=10)
            self.out(f"          → {self.forward_to} {answer.status_code}")
        except requests.RequestException as error:
            self.out(f"          → {self.forward_to} failed: {type(error).__name__}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="fab listen", description=__doc__)
    parser.add_argument("--url", default="http://127.0.0.1:8000", help="the service")
    parser.add_argument("--api-key", default=None, help="default: API_KEY from the settings")
    parser.add_argument("--forward-to", default=None, help="POST each event there, signed")
    parser.add_argument("--types", default="", help="comma-separated event types (all)")
    arguments = parser.parse_args(argv)
    api_key = arguments.api_key
    if api_key is None:
        from app.config import get_settings

        configured = get_settings().api_key
        api_key = configured.get_secret_value() if configured else None
    types = [part.strip() for part in arguments.types.split(",") if part.strip()] or None
    listener = Listener(
        url=arguments.url, api_key=api_key, types=types, forward_to=arguments.forward_to
    )
    print(f"Listening to {listener.url}/api/v1/events/stream (Ctrl-C stops).", flush=True)
    if listener.forward_to:
        print(f"Forwarding to {listener.forward_to}, signed with {listener.secret}", flush=True)
    try:
        listener.run()
    except KeyboardInterrupt:
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
