"""Developer tasks: `fab --list` shows them, `fab --help <task>` their options."""

import shlex
import sys
from pathlib import Path

from fabric import task
from invoke import Context, Exit

ROOT = Path(__file__).resolve().parent
# The interpreter running fab is the venv's, so `-m` finds the venv's alembic, uvicorn, pytest.
PYTHON = shlex.quote(sys.executable)
# How `fab account-add` hands the token to `python -m app.cli account-add`.
ACCOUNT_TOKEN_VARIABLE = "INSTA_ACCOUNT_TOKEN"  # noqa: S105 (a variable name)


def _run(c: Context, command: str, *, env: dict[str, str] | None = None) -> None:
    # From the repo root whatever directory fab was started in: alembic.ini and .env live there.
    with c.cd(str(ROOT)):
        c.run(command, pty=False, echo=True, env=env or {})


@task
def migrate(c, revision="head"):
    """Upgrade the database to `revision` (alembic upgrade)."""
    _run(c, f"{PYTHON} -m alembic upgrade {shlex.quote(revision)}")


@task
def makemigrations(c, message="auto"):
    """Write a new migration from the models' changes (alembic revision --autogenerate)."""
    _run(c, f"{PYTHON} -m alembic revision --autogenerate -m {shlex.quote(message)}")


# Loopback by default: a tunnel (ngrok, cloudflared) connects to localhost, and nothing else on
# the network reaches the service unless asked for with --host 0.0.0.0.
@task
def runserver(c, host="127.0.0.1", port=8000, reload=False):
    """Check the configuration, apply migrations, then serve app.main:app with uvicorn."""
    from app.config import Settings
    from app.safety import refusals

    reasons = refusals(Settings())
    if reasons:
        raise Exit("insta-service will not start: " + "; ".join(reasons))
    migrate(c)
    reload_flag = " --reload" if reload else ""
    # The service logs every request itself (path without the query string, with a request
    # id); uvicorn's access log would add a second line holding the query (and its secrets).
    _run(
        c,
        f"{PYTHON} -m uvicorn app.main:app --host {shlex.quote(host)} --port {port}"
        f" --no-access-log{reload_flag}",
    )


# `def test...` would read as a pytest test to tools (ruff PT028); the task is still `fab test`.
@task(name="test")
def run_tests(c, args=""):
    """Run the test suite (pytest); extra pytest arguments go in --args."""
    # warn=False (the default) makes a failing run fail fab with pytest's exit code.
    _run(c, f"{PYTHON} -m pytest {args}".rstrip())


@task
def lint(c):
    """Check lint rules and formatting with ruff, and types with mypy (changes nothing)."""
    _run(c, f"{PYTHON} -m ruff check .")
    _run(c, f"{PYTHON} -m ruff format --check .")
    _run(c, f"{PYTHON} -m mypy")


@task
def sandbox(c, port=8001, webhook_url="http://127.0.0.1:8000/webhook"):
    """Run the Instagram Graph API sandbox, delivering webhooks to `webhook_url`."""
    _run(c, f"{PYTHON} -m app.sandbox --port {port} --webhook-url {shlex.quote(webhook_url)}")


@task
def demo(c, port=8000, sandbox_port=8001):
    """Run the service against the sandbox with two customers who wrote in; Ctrl-C stops it."""
    # Imported here so `fab --list` stays fast and works even when the app cannot import.
    from app.sandbox.demo import DemoError, run_demo

    try:
        run_demo(port=port, sandbox_port=sandbox_port)
    except DemoError as error:
        raise Exit(f"The demo failed: {error}") from None


@task
def listen(c, forward_to="", types="", url="http://127.0.0.1:8000", api_key=""):
    """Print the service's events as they happen (like `stripe listen`); --forward-to POSTs
    each one, signed, to a local URL; --types filters (comma-separated)."""
    flags = f" --url {shlex.quote(url)}"
    flags += f" --forward-to {shlex.quote(forward_to)}" if forward_to else ""
    flags += f" --types {shlex.quote(types)}" if types else ""
    flags += f" --api-key {shlex.quote(api_key)}" if api_key else ""
    _run(c, f"{PYTHON} -m app.listen{flags}")


@task
def replay(c, limit=0):
    """Re-apply stored webhook deliveries whose events failed (after fixing the cause)."""
    limit_flag = f" --limit {int(limit)}" if limit else ""
    _run(c, f"{PYTHON} -m app.cli replay{limit_flag}")


@task
def backfill(c, account="", days=0):
    """Import conversations and messages from the Conversations API (progress as it goes)."""
    flags = (f" --account {shlex.quote(account)}" if account else "") + (
        f" --days {int(days)}" if days else ""
    )
    _run(c, f"{PYTHON} -m app.cli backfill{flags}")


def _account_flag(account: str) -> str:
    return f" --account {shlex.quote(account)}" if account else ""


@task
def doctor(c, account=""):
    """Check the configuration, the database and every account (or one: --account IG_ID)."""
    _run(c, f"{PYTHON} -m app.cli doctor{_account_flag(account)}")


@task
def subscribe(c, account=""):
    """Subscribe every account (or one: --account IG_ID) to the webhook fields handled."""
    _run(c, f"{PYTHON} -m app.cli subscribe{_account_flag(account)}")


@task
def accounts(c):
    """List the business accounts: status, token state, conversations, last webhook."""
    _run(c, f"{PYTHON} -m app.cli accounts")


@task(name="account-add")
def account_add(c, token):
    """Add a business account by its access token (or give an existing one a new token)."""
    # The token travels in the environment, never on a command line (echoed, or seen by ps).
    _run(c, f"{PYTHON} -m app.cli account-add", env={ACCOUNT_TOKEN_VARIABLE: token})


@task(name="account-remove")
def account_remove(c, id):  # the option is --id, as operators type it
    """Stop serving a business account (its conversations stay readable)."""
    _run(c, f"{PYTHON} -m app.cli account-remove --id {shlex.quote(id)}")


@task(name="token-key")
def token_key(c):
    """Print a new Fernet key for TOKEN_ENCRYPTION_KEY."""
    _run(c, f"{PYTHON} -m app.cli token-key")


@task
def bench(c, scenario="", duration=10, quick=False, markdown=False):
    """Benchmark the service against the bare FastAPI app with wrk (see bench/README.md)."""
    scenarios = "".join(f" --scenario {shlex.quote(name)}" for name in scenario.split(",") if name)
    flags = (" --quick" if quick else "") + (" --markdown" if markdown else "")
    _run(c, f"{PYTHON} -m bench --duration {float(duration):g}{scenarios}{flags}")


@task
def faults(c, only=""):
    """Fault drills: kill -9, PostgreSQL restart (restarts the local cluster), Graph API hang,
    two replicas; prints the counts (see bench/README.md)."""
    drills = "".join(f" --only {shlex.quote(name)}" for name in only.split(",") if name)
    _run(c, f"{PYTHON} -m bench.faults{drills}")
