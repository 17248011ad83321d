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
    lines = [f"{total} samples of active threads; inclusive share, top {TOP_FRAMES}:"]
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
