"""`python -m bench.routing`: what finding a request's route costs in the service's app.

FastAPI tries the routes in order (an included router's one by one, without looking at its
prefix first), so a path costs more the later its route comes. This resolves the hot paths
and `/health` through the app's router, as a request does before anything else runs, and
prints microseconds of CPU per lookup (one core, no server, no database touched).
"""

import argparse
import os
import time

from starlette.routing import Match
from starlette.types import Scope

from app.config import Settings
from app.main import create_app

PATHS = (
    ("POST", "/webhook"),
    ("GET", "/messages"),
    ("GET", "/api/v1/conversations/1000000000000001/messages"),
    ("POST", "/api/v1/conversations/1000000000000001/messages"),
    ("GET", "/health"),
)


def _scope(method: str, path: str) -> Scope:
    return {
        "type": "http",
        "method": method,
        "path": path,
        "root_path": "",
        "headers": [(b"host", b"127.0.0.1")],
        "query_string": b"",
        "state": {},
    }


def lookup_seconds(app: object, method: str, path: str, calls: int) -> float:
    """CPU seconds per route lookup of `method path` (what Router.app does first)."""
    routes = app.router.routes  # type: ignore[attr-defined]

    def find() -> None:
        scope = _scope(method, path)
        for route in routes:
            if route.matches(scope)[0] == Match.FULL:
                return
        raise AssertionError(f"no route for {method} {path}")

    for _ in range(200):
        find()
    started = time.process_time()
    for _ in range(calls):
        find()
    return (time.process_time() - started) / calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20_000)
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {0})
    settings = Settings(_env_file=None, allow_open_api=True, database_url="sqlite://")
    app = create_app(settings)
    for method, path in PATHS:
        microseconds = 1e6 * lookup_seconds(app, method, path, args.calls)
        print(f"{method:<5} {path:<52} {microseconds:6.1f} µs CPU per lookup")


if __name__ == "__main__":
    main()
