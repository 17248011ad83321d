"""Operator commands: `python -m app.cli replay|doctor|subscribe|backfill` (what `fab replay`,
`fab doctor`, `fab subscribe` and `fab backfill` run)."""

import argparse
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from sqlalchemy import Engine

from app.clients.instagram import InstagramClient
from app.clients.instagram_errors import InstagramError
from app.config import Settings, get_settings
from app.db import create_db_engine, create_session_factory
from app.services.doctor import run_checks
from app.services.replay import replay_failed
from app.services.subscription import WEBHOOK_FIELDS, subscribe
from app.services.sync.progress import ProgressLine
from app.services.sync.runner import HistorySync
from app.services.tokens import TokenStore


def _replay(arguments: argparse.Namespace) -> int:
    settings = get_settings()
    engine = create_db_engine(settings)
    try:
        report = replay_failed(
            create_session_factory(engine),
            limit=arguments.limit,
            archive_media=settings.media_archive != "off",
        )
    finally:
        engine.dispose()
    print(
        f"replayed {report.replayed} failed deliveries: {report.fixed} now applied, "
        f"{len(report.still_failing)} still failing"
        + (f" (ids {', '.join(map(str, report.still_failing))})" if report.still_failing else "")
    )
    return 1 if report.still_failing else 0


@dataclass(frozen=True)
class Collaborators:
    settings: Settings
    engine: Engine
    tokens: TokenStore
    instagram: InstagramClient


@contextmanager
def collaborators() -> Iterator[Collaborators]:
    """What the service itself would use: the settings, the database and the Graph client
    with the stored (possibly refreshed) token."""
    settings = get_settings()
    engine = create_db_engine(settings)
    tokens = TokenStore(settings=settings, session_factory=create_session_factory(engine))
    instagram = InstagramClient(settings, token=tokens)
    try:
        yield Collaborators(settings=settings, engine=engine, tokens=tokens, instagram=instagram)
    finally:
        instagram.close()
        engine.dispose()


def _doctor(_: argparse.Namespace) -> int:
    with collaborators() as c:
        checks = run_checks(
            settings=c.settings, engine=c.engine, tokens=c.tokens, instagram=c.instagram
        )
    for check in checks:
        print(check.line())
    failed = [check.name for check in checks if check.failed]
    print(f"{len(failed)} of {len(checks)} checks failed" if failed else "all checks passed")
    return 1 if failed else 0


def _subscribe(_: argparse.Namespace) -> int:
    with collaborators() as c:
        try:
            subscription = subscribe(c.instagram)
        except InstagramError as exc:
            print(f"subscribing failed: {exc.message}")
            return 1
    print(f"subscribed to: {', '.join(subscription.fields) or 'nothing'}")
    if subscription.missing:
        print(f"still missing: {', '.join(subscription.missing)} (check the app's webhook fields)")
        return 1
    return 0


def _backfill(arguments: argparse.Namespace) -> int:
    with collaborators() as c:
        try:
            account_id = (
                arguments.account or c.settings.account_id or str(c.instagram.get_me()["user_id"])
            )
        except InstagramError as exc:
            print(f"the account is not known: {exc.message} (pass --account)")
            return 1
        sync = HistorySync(
            session_factory=create_session_factory(c.engine),
            instagram=c.instagram,
            settings=c.settings,
            accounts=lambda: [account_id],
        )
        with sync.sessions() as session:
            job_id = sync.start_backfill(session, account_id=account_id, days=arguments.days).id
        print(
            f"backfill {job_id} of account {account_id}"
            + (f", last {arguments.days} days" if arguments.days else "")
        )
        progress = ProgressLine()
        if not sync.run_job(job_id, progress=progress):
            print(
                "another process (the running service) holds this account: following its progress"
            )
            job = sync.follow(job_id, progress=progress)
        else:
            job = sync.job(job_id)
    if job.status == "failed":
        print(f"backfill failed: {job.error}")
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app.cli", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    replay = commands.add_parser("replay", help="re-apply webhook deliveries whose events failed")
    replay.add_argument("--limit", type=int, default=None, help="at most this many deliveries")
    replay.set_defaults(run=_replay)
    doctor = commands.add_parser(
        "doctor", help="check the configuration, the database and the Instagram account"
    )
    doctor.set_defaults(run=_doctor)
    subscribe_command = commands.add_parser(
        "subscribe", help=f"subscribe the account to the webhook fields {', '.join(WEBHOOK_FIELDS)}"
    )
    subscribe_command.set_defaults(run=_subscribe)
    backfill = commands.add_parser(
        "backfill", help="import conversations and messages from the Conversations API"
    )
    backfill.add_argument(
        "--account", default=None, help="the account's IG_ID (default: the configured one)"
    )
    backfill.add_argument(
        "--days", type=int, default=None, help="only conversations active in the last N days"
    )
    backfill.set_defaults(run=_backfill)
    arguments = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    code: int = arguments.run(arguments)
    return code


if __name__ == "__main__":
    sys.exit(main())
