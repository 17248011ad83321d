"""`python -m bench`: run the scenarios and print one table (see bench/README.md)."""

import argparse
import contextlib
import dataclasses
import json
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from sqlalchemy import create_engine

from bench import database
from bench.load import require_wrk
from bench.machine import describe, postgres_on_client_core
from bench.processes import (
    BenchError,
    Processes,
    interrupted_by_sigterm,
    machine_busy_seconds,
    require_tool,
)
from bench.report import markdown_table, text_table
from bench.scenarios import SCENARIOS, Context, Options, Row, ordered
from bench.stack import CLIENT_CPUS, SERVER_CPUS, base_environment

BUSY_PERCENT = 25.0
QUICK_SECONDS = 2.0
QUICK_WARMUP_SECONDS = 1.0


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Benchmark insta-service against the bare FastAPI app with wrk.",
    )
    parser.add_argument(
        "--scenario",
        action="append",
        choices=list(SCENARIOS),
        metavar="NAME",
        help=f"run only this scenario (repeatable): {', '.join(SCENARIOS)}",
    )
    parser.add_argument("--duration", type=float, default=10.0, help="seconds measured (10)")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of warm-up (2)")
    parser.add_argument(
        "--connections", type=int, default=16, help="wrk connections, all but send (16)"
    )
    parser.add_argument(
        "--send-connections", type=int, default=64, help="wrk connections for send (64)"
    )
    parser.add_argument("--threads", type=int, default=2, help="wrk threads (2)")
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"smoke run: {QUICK_SECONDS:g} s per scenario, and no 1,000,000-message "
        "preload unless a -1m scenario is named",
    )
    parser.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    parser.add_argument("--json", type=Path, help="also write every figure to this file")
    parser.add_argument(
        "--profile",
        type=Path,
        metavar="DIR",
        help="sample the server with py-spy during each measured run: DIR/<scenario>.raw "
        "(collapsed stacks) and .txt (where the time goes)",
    )
    parser.add_argument(
        "--database-url",
        default=os.environ.get("BENCH_DATABASE_URL", database.DEFAULT_DATABASE_URL),
        help="PostgreSQL to use (env BENCH_DATABASE_URL; created and migrated if needed; "
        "its service tables are emptied)",
    )
    parser.add_argument(
        "--no-pin-postgres",
        action="store_true",
        help="leave PostgreSQL on every core (by default it shares the client's core)",
    )
    parser.add_argument(
        "--uvicorn-arg",
        action="append",
        default=[],
        metavar="ARG",
        help="extra uvicorn argument for the service and the bare app "
        "(e.g. --uvicorn-arg=--http=httptools)",
    )
    return parser.parse_args(argv)


def _selected(args: argparse.Namespace) -> list[str]:
    if args.scenario:
        return list(args.scenario)
    if args.quick:
        return [name for name in SCENARIOS if not name.endswith("-1m")]
    return list(SCENARIOS)


def _background_load(seconds: float = 2.0) -> float:
    """How busy all cores are before the bench starts anything (percent of one core)."""
    before = machine_busy_seconds()
    time.sleep(seconds)
    return 100 * (machine_busy_seconds() - before) / seconds


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    options = Options(
        seconds=QUICK_SECONDS if args.quick else args.duration,
        warmup_seconds=QUICK_WARMUP_SECONDS if args.quick else args.warmup,
        connections=args.connections,
        send_connections=args.send_connections,
        threads=args.threads,
        uvicorn_args=tuple(args.uvicorn_arg),
        profile_dir=args.profile,
    )
    try:
        return _run(args, options)
    except BenchError as error:
        _say(f"bench: {error}")
        return 2
    except KeyboardInterrupt:
        _say("bench: interrupted; every process it started has been stopped")
        return 130


def _run(args: argparse.Namespace, options: Options) -> int:
    require_wrk()
    require_tool("taskset", install="apt-get install util-linux")
    if (os.cpu_count() or 1) < 2:
        raise BenchError("the bench needs 2 cores: the server on one, the client on the other")
    scenarios = ordered(_selected(args))
    if args.profile is not None:
        args.profile.mkdir(parents=True, exist_ok=True)
    database.ensure_database(args.database_url)
    database.migrate(args.database_url)
    engine = create_engine(args.database_url)
    machine = describe(engine)
    idle_load = _background_load()
    machine["load before start"] = f"{idle_load:.0f} % of {100 * (os.cpu_count() or 1)}"
    if idle_load > BUSY_PERCENT:
        _say(
            f"bench: WARNING: the machine is already {idle_load:.0f} % busy before the bench "
            "starts (another benchmark or test run?): the figures will be low and noisy"
        )
    rows: list[Row] = []
    try:
        with (
            tempfile.TemporaryDirectory(prefix="insta-bench-") as workdir,
            interrupted_by_sigterm(),
            Processes(environment=base_environment(), workdir=Path(workdir)) as processes,
            (
                contextlib.nullcontext("PostgreSQL not pinned (--no-pin-postgres)")
                if args.no_pin_postgres
                else postgres_on_client_core(engine)
            ) as pinned,
        ):
            _say(
                f"bench: server (service or bare app) pinned to core {SERVER_CPUS}; wrk and the "
                f"Graph API sandbox to core {CLIENT_CPUS}; {pinned}"
            )
            _say("bench: " + ", ".join(f"{key} {value}" for key, value in machine.items()))
            context = Context(
                options=options,
                engine=engine,
                database_url=args.database_url,
                workdir=Path(workdir),
                processes=processes,
                say=_say,
            )
            for scenario in scenarios:
                _say(f"▶ {scenario.name}: {scenario.description}")
                row = scenario.run(context)
                rows.append(row)
                _say(
                    f"  {row.load.rate:,.0f} req/s, p50 {row.load.p50_ms:.1f} ms, "
                    f"p99 {row.load.p99_ms:.1f} ms, server CPU {row.usage.cpu_percent:.0f} %, "
                    f"RSS {row.usage.rss_peak_mb:.0f} MB, machine busy "
                    f"{row.usage.machine_busy_percent:.0f} % of 200"
                )
    finally:
        engine.dispose()
    bare = next((row for row in rows if row.scenario == "bare"), None)
    for row in rows:
        if bare is not None and bare.load.rate:
            row.ratio = row.load.rate / bare.load.rate
    print(markdown_table(rows) if args.markdown else text_table(rows))
    print(
        f"\n{machine['date']}; {machine['cpu']}, {machine['memory']}; Python {machine['python']}; "
        f"PostgreSQL {machine['postgresql']}; {machine['wrk']}; uvicorn {machine['uvicorn']}. "
        f"Server on core {SERVER_CPUS}; wrk (-t{options.threads}), the sandbox and PostgreSQL "
        f"on core {CLIENT_CPUS}. {options.seconds:g} s per scenario after "
        f"{options.warmup_seconds:g} s of warm-up; {options.connections} connections "
        f"({options.send_connections} for send)."
    )
    if args.json:
        args.json.write_text(
            json.dumps(
                {"machine": machine, "rows": [dataclasses.asdict(row) for row in rows]},
                indent=2,
                default=str,
            )
        )
    problems = [f"{row.scenario}: {problem}" for row in rows for problem in row.problems]
    for problem in problems:
        _say(f"PROBLEM {problem}")
    return 1 if problems else 0
