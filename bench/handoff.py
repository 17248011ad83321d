"""`python -m bench.handoff`: what one thread hand-off costs, the price of every synchronous
(`def`) endpoint: the event loop gives the call to a worker thread (anyio's, as Starlette
does) and waits for its result.

Measured on one core (pinned, like the bench's server) with uvloop when installed, as uvicorn
runs: a no-op called directly, awaited as a coroutine, and handed to a thread one at a time
and 16 at a time (16 = the bench's connections: the threads then contend for the GIL).
Prints microseconds per call of CPU (the process's) and of wall clock.
"""

import argparse
import asyncio
import os
import time
from collections.abc import Awaitable, Callable

import anyio.to_thread

CALLS = 20_000


def nothing() -> None:
    return None


async def awaited() -> None:
    return None


async def measure(name: str, run: Callable[[], Awaitable[None]], calls: int) -> None:
    await run()  # warm: threads started, code paths taken
    cpu, wall = time.process_time(), time.perf_counter()
    await run()
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    print(f"{name:<44} {1e6 * cpu / calls:7.1f} µs CPU  {1e6 * wall / calls:7.1f} µs wall")


async def main(calls: int) -> None:
    async def direct() -> None:
        for _ in range(calls):
            nothing()

    async def coroutine() -> None:
        for _ in range(calls):
            await awaited()

    async def one_at_a_time() -> None:
        for _ in range(calls):
            await anyio.to_thread.run_sync(nothing)

    async def sixteen_at_a_time() -> None:
        async def share() -> None:
            for _ in range(calls // 16):
                await anyio.to_thread.run_sync(nothing)

        async with anyio.create_task_group() as group:
            for _ in range(16):
                group.start_soon(share)

    await measure("a plain call", direct, calls)
    await measure("an awaited coroutine (an async dependency)", coroutine, calls)
    await measure("a thread hand-off, one at a time", one_at_a_time, calls)
    await measure("a thread hand-off, 16 at a time", sixteen_at_a_time, calls)


def run() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=CALLS)
    args = parser.parse_args()
    os.sched_setaffinity(0, {0})
    try:
        import uvloop
    except ImportError:  # uvicorn runs the standard loop then, and so does this
        asyncio.run(main(args.calls))
    else:
        uvloop.run(main(args.calls))


if __name__ == "__main__":
    run()
