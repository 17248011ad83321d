"""Operator commands: `python -m app.cli replay` (what `fab replay` runs)."""

import argparse
import logging
import sys

from app.config import get_settings
from app.db import create_db_engine, create_session_factory
from app.services.replay import replay_failed


def _replay(arguments: argparse.Namespace) -> int:
    engine = create_db_engine(get_settings())
    try:
        report = replay_failed(create_session_factory(engine), limit=arguments.limit)
    finally:
        engine.dispose()
    print(
        f"replayed {report.replayed} failed deliveries: {report.fixed} now applied, "
        f"{len(report.still_failing)} still failing"
        + (f" (ids {', '.join(map(str, report.still_failing))})" if report.still_failing else "")
    )
    return 1 if report.still_failing else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app.cli", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    replay = commands.add_parser("replay", help="re-apply webhook deliveries whose events failed")
    replay.add_argument("--limit", type=int, default=None, help="at most this many deliveries")
    replay.set_defaults(run=_replay)
    arguments = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    return arguments.run(arguments)


if __name__ == "__main__":
    sys.exit(main())
