"""A consumer's webhook endpoint for the drills and the benchmark: a threaded HTTP server on
loopback answering 200 to every POST and counting what it got (by `webhook-id`, and the
message mid of `message.*` events)."""

import json
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class CountingReceiver:
    def __init__(self) -> None:
        self.by_event_id: Counter[str] = Counter()
        self.by_mid: Counter[str] = Counter()
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive: the deliverer reuses its connections

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver._count(self.headers.get("webhook-id", ""), body)
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/events"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def _count(self, event_id: str, body: bytes) -> None:
        mid = (json.loads(body).get("data", {}).get("message") or {}).get("mid")
        with self._lock:
            self.by_event_id[event_id] += 1
            if mid:
                self.by_mid[mid] += 1

    def received(self) -> int:
        with self._lock:
            return sum(self.by_event_id.values())

    def mids(self) -> Counter[str]:
        with self._lock:
            return Counter(self.by_mid)

    def event_ids(self) -> Counter[str]:
        with self._lock:
            return Counter(self.by_event_id)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
