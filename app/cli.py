"""Operator commands: `python -m app.cli replay|doctor|subscribe|backfill|accounts|
account-add|account-remove|token-key` (what the `fab` tasks of the same names run)."""

import argparse
import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from sqlalchemy import Engine

from app.clients.instagram import InstagramClient
from app.clients.instagram_errors import InstagramError
from app.config import Settings, get_settings
from app.db import create_db_engine, create_session_factory
from app.errors import AppError
from app.repositories import accounts
from app.services.accounts import AccountService
from app.services.doctor import run_checks
from app.services.replay import replay_failed
from app.services.subscription import WEBHOOK_FIELDS, subscribe
from app.services.sync.progress import ProgressLine
from app.services.sync.runner import HistorySync
from app.services.tokens import TokenStore
from app.services.tokens.cipher import new_key

ACCOUNT_TOKEN_VARIABLE = "INSTA_ACCOUNT_TOKEN"  # noqa: S105 (a variable name)


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
    instagram = InstagramClient(settings, accounts=tokens)
    try:
        yield Collaborators(settings=settings, engine=engine, tokens=tokens, instagram=instagram)
    finally:
        instagram.close()
        engine.dispose()


def _doctor(arguments: argparse.Namespace) -> int:
    with collaborators() as c:
        checks = run_checks(
            settings=c.settings,
            engine=c.engine,
            tokens=c.tokens,
            instagram=c.instagram,
            account=arguments.account,
        )
    for check in checks:
        print(check.line())
    failed = [check.name for check in checks if check.failed]
    print(f"{len(failed)} of {len(checks)} checks failed" if failed else "all checks passed")
    return 1 if failed else 0


def _subscribe(arguments: argparse.Namespace) -> int:
    """Subscribe every stored account (or `--account`; without any stored, the
    environment's) to the webhook fields the service handles."""
    failed = False
    with collaborators() as c:
        targets = _subscription_targets(c, only=arguments.account)
        if not targets:
            print(f"no account {arguments.account}: add it with `fab account-add`")
            return 1
        for name, client in targets:
            try:
                subscription = subscribe(client)
            except InstagramError as exc:
                print(f"{name}: subscribing failed: {exc.message}")
                failed = True
                continue
            print(f"{name}: subscribed to {', '.join(subscription.fields) or 'nothing'}")
            if subscription.missing:
                print(f"{name}: still missing {', '.join(subscription.missing)}")
                failed = True
    return 1 if failed else 0


def _subscription_targets(
    c: Collaborators, *, only: str | None
) -> list[tuple[str, InstagramClient]]:
    c.tokens.adopt_at_start()
    with c.tokens.session_factory() as session:
        stored = [row.id for row in accounts.listed(session)]
    if not stored and only is None and c.settings.instagram_user_token is not None:
        return [("the environment's account", c.instagram)]
    return [
        (f"account {account_id}", c.instagram.for_account(account_id))
        for account_id in stored
        if only in (None, account_id)
    ]


@contextmanager
def account_service() -> Iterator[AccountService]:
    with collaborators() as c, c.tokens.session_factory() as session:
        yield AccountService(session=session, instagram=c.instagram, tokens=c.tokens)


def _accounts(_: argparse.Namespace) -> int:
    with account_service() as service:
        listed = service.listed()
    if not listed:
        print("no accounts: add one with `fab account-add --token …`")
    for account in listed:
        print(
            f"{account['id']}  @{account['username'] or '?'}  {account['status']}  "
            f"token {account['token_state']}  {account['conversation_count']} conversations  "
            f"last webhook {account['last_webhook_at'] or 'never'}"
        )
    return 0


def _account_add(arguments: argparse.Namespace) -> int:
    token = arguments.token or os.environ.get(ACCOUNT_TOKEN_VARIABLE, "").strip()
    if not token:
        print(f"give the token: --token, or the {ACCOUNT_TOKEN_VARIABLE} environment variable")
        return 2
    try:
        with account_service() as service:
            account, created = service.add(access_token=token)
    except AppError as exc:
        print(f"not added: {exc.message} ({exc.code})")
        return 1
    print(
        f"{'added' if created else 'new token for'} account {account['id']} "
        f"(@{account['username']}), subscribed to {', '.join(account['subscribed_fields'] or [])}"
    )
    return 0


def _account_remove(arguments: argparse.Namespace) -> int:
    try:
        with account_service() as service:
            service.remove(account_id=arguments.id)
    except AppError as exc:
        print(f"not removed: {exc.message}")
        return 1
    print(f"account {arguments.id} removed: its conversations stay readable")
    return 0


def _token_key(_: argparse.Namespace) -> int:
    print(new_key())
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
    doctor.add_argument("--account", default=None, help="check only this account (IG_ID)")
    doctor.set_defaults(run=_doctor)
    subscribe_command = commands.add_parser(
        "subscribe",
        help=f"subscribe every account to the webhook fields {', '.join(WEBHOOK_FIELDS)}",
    )
    subscribe_command.add_argument("--account", default=None, help="only this account (IG_ID)")
    subscribe_command.set_defaults(run=_subscribe)
    commands.add_parser("accounts", help="list the business accounts").set_defaults(run=_accounts)
    add = commands.add_parser("account-add", help="add an account by its access token")
    add.add_argument(
        "--token",
        default=None,
        help=f"the account's Instagram user token (better: the {ACCOUNT_TOKEN_VARIABLE} "
        "environment variable, which no process listing shows)",
    )
    add.set_defaults(run=_account_add)
    remove = commands.add_parser("account-remove", help="stop serving an account")
    remove.add_argument("--id", required=True, help="the account's IG_ID")
    remove.set_defaults(run=_account_remove)
    commands.add_parser(
        "token-key", help="print a new Fernet key for TOKEN_ENCRYPTION_KEY"
    ).set_defaults(run=_token_key)
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
