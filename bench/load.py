"""Drive a server with wrk and read back what it measured (bench/wrk/pool.lua prints it)."""

import json
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from bench.pools import Pool
from bench.processes import BenchError, die_with_parent, require_tool
from bench.stack import CLIENT_CPUS

POOL_SCRIPT = Path(__file__).resolve().parent / "wrk" / "pool.lua"
RESULT_MARKER = "BENCH_RESULT "
REQUEST_TIMEOUT_SECONDS = 10


def require_wrk() -> str:
    return require_tool("wrk", install="apt-get install wrk (Debian/Ubuntu package `wrk`)")


@dataclass(frozen=True)
class LoadResult:
    """What one wrk run measured."""

    requests: int  # completed
    seconds: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    statuses: Mapping[str, int]  # "2xx", "3xx", "4xx", "5xx"
    errors: Mapping[str, int]  # socket errors and timeouts (wrk's "status" = HTTP >= 400)
    sent: int  # requests wrk started, completed or not
    pool_lines: int
    pool_used: int  # distinct pool lines sent

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def pool_exhausted(self) -> bool:
        """Some lines were sent twice: the pool was smaller than the run."""
        return self.sent > self.pool_lines

    @property
    def socket_errors(self) -> int:
        return sum(count for name, count in self.errors.items() if name != "status")

    @property
    def failures(self) -> int:
        """Answers that were not 2xx, plus requests that got no answer."""
        return self.requests - self.statuses.get("2xx", 0) + self.socket_errors


def run_wrk(
    url: str,
    *,
    pool: Pool,
    mode: str,
    seconds: float,
    connections: int,
    threads: int = 2,
    headers: Mapping[str, str] | None = None,
) -> LoadResult:
    """Run wrk against `url` for `seconds`, cycling through `pool`, pinned to the client core."""
    threads = max(1, min(threads, connections))
    header_args = [f"{name}: {value}" for name, value in (headers or {}).items()]
    command = [
        *("taskset", "-c", CLIENT_CPUS, require_wrk()),
        *(f"-t{threads}", f"-c{connections}", f"-d{max(1, round(seconds))}s"),
        *(f"--timeout={REQUEST_TIMEOUT_SECONDS}s", "-s", str(POOL_SCRIPT), url),
        *("--", str(pool.path), mode, str(threads), *header_args),
    ]
    completed = subprocess.run(  # noqa: S603  # wrk with fixed arguments
        command,
        capture_output=True,
        text=True,
        timeout=seconds + 120,
        check=False,
        preexec_fn=die_with_parent,  # only prctl: safe between fork and exec
    )
    for line in completed.stdout.splitlines():
        if line.startswith(RESULT_MARKER):
            data = json.loads(line[len(RESULT_MARKER) :])
            break
    else:
        raise BenchError(
            f"wrk exited with {completed.returncode} without a result:\n"
            + (completed.stdout + completed.stderr)[-3000:]
        )
    latency = data["latency_us"]
    return LoadResult(
        requests=data["requests"],
        seconds=data["duration_us"] / 1e6,
        p50_ms=latency["p50"] / 1000,
        p90_ms=latency["p90"] / 1000,
        p99_ms=latency["p99"] / 1000,
        max_ms=latency["max"] / 1000,
        statuses=data["status"],
        errors=data["errors"],
        sent=data["sent"],
        pool_lines=data["pool"],
        pool_used=data["used"],
    )
