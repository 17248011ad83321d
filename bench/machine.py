"""What the figures were measured on, and keeping PostgreSQL off the server's core."""

import contextlib
import importlib.util
import os
import platform
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy import Engine, text

from bench.database import server_version
from bench.load import require_wrk
from bench.stack import CLIENT_CPUS


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _memory_gib() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) / 1024 / 1024
    return 0.0


def _wrk_version() -> str:
    completed = subprocess.run(  # noqa: S603  # wrk with a fixed argument
        [require_wrk(), "--version"], capture_output=True, text=True, check=False
    )
    return (completed.stdout + completed.stderr).split("Copyright")[0].strip()


def uvicorn_stack() -> str:
    """The HTTP parser and event loop uvicorn picks by default here (auto: the C ones if
    installed), which sets the stack's ceiling."""
    http = "httptools" if importlib.util.find_spec("httptools") else "h11"
    loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    return f"{http} + {loop}"


def describe(engine: Engine) -> dict[str, str]:
    """The machine, the versions and the PostgreSQL durability settings."""
    with engine.connect() as connection:
        fsync = connection.scalar(text("SHOW fsync"))
        synchronous_commit = connection.scalar(text("SHOW synchronous_commit"))
    return {
        "date": time.strftime("%Y-%m-%d %H:%M %Z"),
        "cpu": f"{os.cpu_count()} x {_cpu_model()}",
        "memory": f"{_memory_gib():.0f} GiB",
        "kernel": platform.release(),
        "python": platform.python_version(),
        "postgresql": (
            f"{server_version(engine)} (fsync={fsync}, synchronous_commit={synchronous_commit})"
        ),
        "wrk": _wrk_version(),
        "uvicorn": uvicorn_stack(),
    }


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("PPid:") and int(line.split()[1]) == pid:
                found.append(int(entry.name))
                break
    return found


def postmaster_pid(engine: Engine) -> int | None:
    """The local PostgreSQL server's main process, when it runs on this machine."""
    with engine.connect() as connection:
        backend = connection.scalar(text("SELECT pg_backend_pid()"))
        address = connection.scalar(text("SELECT inet_server_addr()"))
    if address is not None and not str(address).startswith(("127.", "::1")):
        return None
    try:
        for line in Path(f"/proc/{backend}/status").read_text().splitlines():
            if line.startswith("PPid:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


@contextlib.contextmanager
def postgres_on_client_core(engine: Engine) -> Iterator[str]:
    """Pin the local PostgreSQL (server and backends; new backends inherit it) to the client's
    core for the block, then give it back every core. Yields what was done, for the output."""
    pid = postmaster_pid(engine)
    if pid is None:
        yield "PostgreSQL is not local: not pinned"
        return
    cpus = {int(cpu) for cpu in CLIENT_CPUS.split(",")}
    # Given back every core the bench may use, not what PostgreSQL had: a bench killed with -9
    # cannot restore anything, and the next run then undoes its pinning.
    everywhere = os.sched_getaffinity(0)
    try:
        for process in [pid, *_children(pid)]:
            with contextlib.suppress(ProcessLookupError):
                os.sched_setaffinity(process, cpus)
    except PermissionError:
        yield "PostgreSQL could not be pinned (no permission): it runs on any core"
        return
    try:
        yield f"PostgreSQL pinned to core {CLIENT_CPUS} (restored afterwards)"
    finally:
        for process in [pid, *_children(pid)]:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.sched_setaffinity(process, everywhere)
