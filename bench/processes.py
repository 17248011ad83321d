"""Subprocesses that always go away: started pinned to a CPU, probed until they answer, stopped
on every way out (return, exception, Ctrl-C, SIGTERM, even the bench being killed), and
measured from /proc while they run.
"""

import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType, TracebackType
from typing import IO

import requests

STARTUP_TIMEOUT_SECONDS = 30.0
STOP_TIMEOUT_SECONDS = 10.0
OUTPUT_TAIL_CHARS = 4000

_PR_SET_PDEATHSIG = 1
_LIBC = ctypes.CDLL(None, use_errno=True)
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


class BenchError(RuntimeError):
    """The bench cannot go on: a tool is missing, a process died or did not answer."""


def require_tool(name: str, *, install: str) -> str:
    """The path of an executable (on PATH, or beside this Python: a venv not activated), or
    BenchError saying how to install it."""
    path = shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))
    if path is None:
        raise BenchError(f"`{name}` is not installed: {install}")
    return path


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def die_with_parent() -> None:
    # Runs in the child between fork and exec: if the bench itself is killed (even -9), the
    # kernel sends the child SIGTERM, so no server outlives the run. taskset keeps it: it
    # execs the real command, and the death signal survives exec.
    _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


@dataclass(eq=False)
class Process:
    """One subprocess; its output goes to a temporary file, shown when it fails."""

    name: str
    popen: subprocess.Popen[bytes]
    log: IO[bytes]
    url: str | None = None

    @property
    def pid(self) -> int:
        return self.popen.pid

    def is_running(self) -> bool:
        return self.popen.poll() is None

    def output(self) -> str:
        """The tail of what the process printed so far."""
        if self.log.closed:
            return ""
        self.log.flush()
        with open(self.log.name, "rb") as reader:
            text = reader.read().decode(errors="replace")
        return text[-OUTPUT_TAIL_CHARS:]

    def kill(self) -> None:
        """SIGKILL, as a crash or the OOM killer would; waits for the process to be gone."""
        if self.is_running():
            self.popen.kill()
        self.popen.wait()

    def stop(self) -> None:
        """SIGTERM, wait a little, SIGKILL if it will not go."""
        if self.is_running():
            self.popen.terminate()
        try:
            self.popen.wait(timeout=STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait()

    def close(self) -> None:
        self.stop()
        if not self.log.closed:
            self.log.close()


@dataclass
class Processes:
    """The subprocesses of one run; leaving the `with` block stops every one of them."""

    environment: Mapping[str, str]
    workdir: Path
    started: list[Process] = field(default_factory=list)

    def start(
        self,
        name: str,
        command: Sequence[str],
        *,
        cpus: str | None = None,
        ready_url: str | None = None,
        extra_environment: Mapping[str, str] | None = None,
        ready_timeout: float = STARTUP_TIMEOUT_SECONDS,
    ) -> Process:
        """Start `command` (pinned to `cpus` by taskset); wait up to `ready_timeout` seconds
        until `ready_url` answers 200."""
        argv = list(command)
        if cpus is not None:
            argv = ["taskset", "-c", cpus, *argv]
        # Kept open until close(): the process writes to it for as long as it lives.
        log = tempfile.NamedTemporaryFile(prefix=f"bench-{name}-", suffix=".log")  # noqa: SIM115
        popen = subprocess.Popen(  # noqa: S603  # our interpreter and tools, fixed arguments
            argv,
            env={**self.environment, **(extra_environment or {})},
            cwd=self.workdir,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=die_with_parent,  # only prctl: safe between fork and exec
        )
        process = Process(name=name, popen=popen, log=log)
        self.started.append(process)
        if ready_url is not None:
            self.wait_until_ready(process, ready_url, timeout=ready_timeout)
        return process

    def wait_until_ready(
        self, process: Process, url: str, *, timeout: float = STARTUP_TIMEOUT_SECONDS
    ) -> None:
        """Poll `url` until it answers 200; BenchError (with the output) if the process dies."""
        deadline = time.monotonic() + timeout
        while True:
            if not process.is_running():
                raise BenchError(
                    f"the {process.name} exited with code {process.popen.returncode}:\n"
                    + process.output()
                )
            try:
                if requests.get(url, timeout=2).status_code == 200:
                    process.url = url
                    return
            except requests.RequestException:
                pass  # not listening yet
            if time.monotonic() > deadline:
                raise BenchError(
                    f"the {process.name} did not answer {url} within "
                    f"{timeout:g} s:\n" + process.output()
                )
            time.sleep(0.05)

    def stop(self, process: Process) -> None:
        """Stop one process and forget it."""
        process.close()
        if process in self.started:
            self.started.remove(process)

    def stop_all(self) -> None:
        """SIGTERM to all first, then wait for each: they shut down in parallel."""
        for process in self.started:
            if process.is_running():
                process.popen.terminate()
        for process in self.started:
            process.close()
        self.started.clear()

    def __enter__(self) -> "Processes":
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop_all()


@contextlib.contextmanager
def interrupted_by_sigterm() -> Iterator[None]:
    """Within the block, SIGTERM raises KeyboardInterrupt, so `finally` clauses clean up."""

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time the process has used, all its threads together."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    # After the ")" closing the command name: state is field 3, utime 14 and stime 15.
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS


def memory_kib(pid: int, key: str) -> int:
    """A `/proc/<pid>/status` memory line (VmRSS, VmHWM) in KiB; 0 once the process is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(f"{key}:"):
                return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0


TCP_STATES = {"01": "established", "06": "time_wait"}


def tcp_connections(port: int) -> dict[str, set[tuple[str, str]]]:
    """Loopback TCP connections to or from `port` by state (from /proc/net/tcp), each as its
    (local, remote) address pair: the open ones, and those closed in the last minute
    (TIME_WAIT; compare sets, not counts, since older ones expire meanwhile)."""
    connections: dict[str, set[tuple[str, str]]] = {name: set() for name in TCP_STATES.values()}
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote, state = fields[1], fields[2], fields[3]
        ports = {int(local.split(":")[1], 16), int(remote.split(":")[1], 16)}
        if port in ports and state in TCP_STATES:
            connections[TCP_STATES[state]].add((local, remote))
    return connections


def machine_busy_seconds() -> float:
    """CPU seconds all cores have spent not idle since boot (from /proc/stat)."""
    values = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return (sum(values[:8]) - idle) / _CLOCK_TICKS


@dataclass
class Usage:
    """What a process used over a measured interval."""

    cpu_percent: float  # of one core
    rss_peak_mb: float  # the most resident memory the process has had (VmHWM)
    rss_sampled_mb: float  # the most seen by sampling VmRSS during the interval
    machine_busy_percent: float  # all cores together, of one core (2 cores busy: 200)


class UsageMeter:
    """Measure a process's CPU and memory over a `with` block (sampled 5 times a second)."""

    SAMPLE_SECONDS = 0.2

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self._rss_max_kib = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self.usage: Usage | None = None

    def _sample(self) -> None:
        while not self._stop.wait(self.SAMPLE_SECONDS):
            self._rss_max_kib = max(self._rss_max_kib, memory_kib(self.pid, "VmRSS"))

    def __enter__(self) -> "UsageMeter":
        self._started = time.monotonic()
        self._cpu_start = cpu_seconds(self.pid)
        self._busy_start = machine_busy_seconds()
        self._rss_max_kib = memory_kib(self.pid, "VmRSS")
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join()
        elapsed = max(time.monotonic() - self._started, 1e-6)
        try:
            cpu = cpu_seconds(self.pid) - self._cpu_start
        except FileNotFoundError:
            cpu = 0.0
        busy = machine_busy_seconds() - self._busy_start
        self.usage = Usage(
            cpu_percent=100 * cpu / elapsed,
            rss_peak_mb=memory_kib(self.pid, "VmHWM") / 1024,
            rss_sampled_mb=self._rss_max_kib / 1024,
            machine_busy_percent=100 * busy / elapsed,
        )
