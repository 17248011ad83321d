"""`--profile DIR`: sample the server with py-spy during the measured run, and summarise where
its time goes (what bounds a scenario that misses its target)."""

import subprocess
from collections import Counter
from pathlib import Path

from bench.processes import Process, Processes, require_tool
from bench.stack import CLIENT_CPUS

SAMPLES_PER_SECOND = 100
TOP_FRAMES = 25


def start_profiler(processes: Processes, *, pid: int, seconds: float, output: Path) -> Process:
    """py-spy on the client's core, sampling `pid` while a thread holds the GIL (CPU time)."""
    py_spy = require_tool("py-spy", install="pip install -r requirements-dev.txt")
    return processes.start(
        "py-spy",
        [
            *(py_spy, "record", "--pid", str(pid), "--duration", str(max(1, round(seconds)))),
            *("--rate", str(SAMPLES_PER_SECOND), "--format", "raw", "--nonblocking", "--gil"),
            *("--output", str(output)),
        ],
        cpus=CLIENT_CPUS,
    )


# Where a sample's time goes, by the innermost frame it is in (its file), first match wins.
# A C call shows as the Python frame that made it: `do_execute`/`do_commit` are psycopg2
# (building the query, libpq, the socket), not SQLAlchemy.
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("driver (psycopg2, libpq, socket)", ("do_execute (", "do_commit (", "do_rollback (")),
    ("SQLAlchemy", ("sqlalchemy/",)),
    ("logging", ("logging/",)),
    ("metrics (prometheus_client)", ("prometheus_client/",)),
    ("JSON and validation (json, pydantic)", ("json/", "pydantic", "orjson")),
    ("thread hand-off (anyio, threading, queue)", ("anyio/", "threading.py", "queue.py")),
    ("the service's own code (app/)", ("app/",)),
    ("framework (Starlette, FastAPI)", ("starlette/", "fastapi/")),
    ("server (uvicorn, asyncio, httptools)", ("uvicorn/", "asyncio/", "httptools")),
)
BACKGROUND = "BackgroundWorker._run"


def layer_of(stack: str) -> str:
    """The layer a sample's innermost frame is in ("background workers" for every frame of a
    worker thread: not the measured requests' time)."""
    if BACKGROUND in stack:
        return "background workers"
    leaf = stack.rsplit(";", 1)[-1]
    for name, markers in LAYERS:
        if any(marker in leaf for marker in markers):
            return name
    return "other (stdlib, C extensions)"


def breakdown(raw: Path) -> Counter[str]:
    """Samples per layer (see LAYERS)."""
    layers: Counter[str] = Counter()
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if stack:
            layers[layer_of(stack)] += int(count)
    return layers


def summarise(raw: Path) -> str:
    """The frames that take the most samples: inclusive (the service's own code, and the
    libraries it calls), then self."""
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        samples = int(count)
        total += samples
        frames = stack.split(";")
        for frame in set(frames):
            inclusive[frame] += samples
        own[frames[-1]] += samples
    if not total:
        return "no samples\n"
    layers = breakdown(raw)
    lines = [f"{total} samples of active threads; by layer (innermost frame):"]
    lines += [f"{100 * samples / total:5.1f}%  {name}" for name, samples in layers.most_common()]
    lines.append(f"\ninclusive share, top {TOP_FRAMES}:")
    lines += [
        f"{100 * samples / total:5.1f}%  {frame}"
        for frame, samples in inclusive.most_common(TOP_FRAMES)
    ]
    lines.append(f"\nself share, top {TOP_FRAMES}:")
    lines += [
        f"{100 * samples / total:5.1f}%  {frame}" for frame, samples in own.most_common(TOP_FRAMES)
    ]
    return "\n".join(lines) + "\n"


def finish(profiler: Process, *, raw: Path, timeout: float = 60) -> Path | None:
    """Wait for py-spy to write its samples; the summary file next to them."""
    try:
        profiler.popen.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        profiler.stop()
    if not raw.exists():
        return None
    summary = raw.with_suffix(".txt")
    summary.write_text(summarise(raw))
    return summary
