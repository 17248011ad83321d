"""A consumer's webhook endpoint for tests: a real HTTP server on loopback that records what
it receives and answers what it is told to."""

import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float = field(default_factory=time.monotonic)
    status: int = 200

    @property
    def json(self) -> Any:
        return orjson.loads(self.body)

    @property
    def event_id(self) -> str:
        return self.headers["webhook-id"]


@dataclass(frozen=True)
class Answer:
    status: int = 200
    delay: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)


class Receiver:
    """Answers 200 unless `answer_next` (in order) or `answer_for` (by a predicate on the
    body) says otherwise; `received` holds every request, answered or not."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self._lock = threading.Lock()
        self._next: deque[Answer] = deque()
        self._rules: list[tuple[Any, deque[Answer]]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                answer = receiver._answer(body)
                if answer.delay:
                    time.sleep(answer.delay)
                headers = {key.lower(): value for key, value in self.headers.items()}
                with receiver._lock:
                    receiver.received.append(
                        Received(self.path, headers, body, status=answer.status)
                    )
                try:
                    self.send_response(answer.status)
                    for key, value in answer.headers.items():
                        self.send_header(key, value)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                except OSError:
                    pass  # the service gave up waiting (a timeout test)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def answer_next(self, *answers: Answer) -> None:
        with self._lock:
            self._next.extend(answers)

    def answer_for(self, predicate: Any, *answers: Answer) -> None:
        """The next requests whose decoded body matches `predicate` get these answers."""
        with self._lock:
            self._rules.append((predicate, deque(answers)))

    def _answer(self, body: bytes) -> Answer:
        with self._lock:
            for predicate, answers in self._rules:
                if answers and predicate(orjson.loads(body)):
                    return answers.popleft()
            return self._next.popleft() if self._next else Answer()

    def succeeded(self) -> list[Received]:
        with self._lock:
            return [r for r in self.received if 200 <= r.status < 300]

    def all(self) -> list[Received]:
        with self._lock:
            return list(self.received)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
