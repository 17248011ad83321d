"""The README and docs/ stay true: every setting, endpoint, error code, metric, task, revision
and link they name exists, and the samples that show outputs (`fab doctor`, `/ready`, the
README's tour) are what the code answers today."""

import importlib.util
import json
import re
import shlex
from collections import defaultdict
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from alembic.script import ScriptDirectory
from fastapi import FastAPI
from invoke import Task
from pydantic import AliasChoices, BaseModel, SecretStr
from pydantic_settings import BaseSettings

from app import cli, metrics
from app.config import Settings, get_settings
from app.main import create_app
from app.sandbox import SandboxConfig, create_sandbox_app
from app.sandbox.server import BackgroundServer
from app.services.subscription import WEBHOOK_FIELDS
from tests.conftest import StartService
from tests.helpers import (
    API_KEY,
    APP_SECRET,
    USER_TOKEN,
    VERIFY_TOKEN,
    ServiceClient,
    wait_until,
)

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
PAGES = [README, *sorted((ROOT / "docs").glob("*.md"))]
SANDBOX_SECTION = "The sandbox"
NOT_SET = "—"


def text_of(name: str) -> str:
    return (ROOT / name).read_text()


def without_code(text: str) -> str:
    """The Markdown outside fenced code blocks."""
    return re.sub(r"^```.*?^```", "", text, flags=re.MULTILINE | re.DOTALL)


def section(text: str, heading: str) -> str:
    """The body of the `## heading` section (up to the next heading of that level or above)."""
    match = re.search(rf"^(#+) {re.escape(heading)}\n(.*?)(?=^#{{1,2}} |\Z)", text, re.M | re.S)
    assert match, f"no section {heading!r}"
    return match.group(2)


def sample(name: str, page: str = "docs/operations.md") -> str:
    """The fenced block that follows `<!-- sample: name ... -->` in `page`."""
    match = re.search(
        rf"^<!-- sample: {re.escape(name)}\b.*?-->\n```\w*\n(.*?)^```", text_of(page), re.M | re.S
    )
    assert match, f"{page} has no `{name}` sample"
    return match.group(1)


# --- configuration ---------------------------------------------------------------------------


def configuration_tables() -> dict[str, dict[str, str]]:
    """docs/configuration.md's variables and the default shown for each, by section."""
    tables: dict[str, dict[str, str]] = defaultdict(dict)
    heading = ""
    for line in text_of("docs/configuration.md").splitlines():
        if line.startswith("## "):
            heading = line[3:].strip()
        row = re.match(r"^\| `([A-Z][A-Z0-9_]*)` \| ([^|]+) \|", line)
        if row:
            name, shown = row.groups()
            assert name not in tables[heading], f"{name} is listed twice under {heading!r}"
            tables[heading][name] = shown.strip()
    return tables


def plain(value: Any) -> Any:
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    return value if value is None or isinstance(value, str | int | float | bool) else str(value)


def check_default(model: type[BaseSettings], field: str, *, shown: str, name: str) -> None:
    """`shown` is `—` for an unset default, else the default in backticks."""
    default = plain(getattr(model(_env_file=None), field))
    if shown == NOT_SET:
        assert default is None, f"{name}: docs say unset, the default is {default!r}"
        return
    value = re.fullmatch(r"`([^`]+)`", shown)
    assert value, f"{name}: the default {shown!r} is neither {NOT_SET} nor `a value`"
    parsed = plain(getattr(model(_env_file=None, **{field: value.group(1)}), field))
    assert parsed == default, f"{name}: docs say {value.group(1)}, the default is {default!r}"


def sandbox_variable(field: str) -> str:
    alias = SandboxConfig.model_fields[field].validation_alias
    if isinstance(alias, AliasChoices):
        return str(alias.choices[0])
    return f"SANDBOX_{field.upper()}"


@pytest.fixture
def no_sandbox_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    for field in SandboxConfig.model_fields:
        monkeypatch.delenv(sandbox_variable(field), raising=False)


def test_every_setting_is_in_the_configuration_tables_with_its_default() -> None:
    tables = configuration_tables()
    service = {
        name: shown
        for heading, rows in tables.items()
        if heading != SANDBOX_SECTION
        for name, shown in rows.items()
    }

    for field in Settings.model_fields:
        name = field.upper()
        assert name in service, f"{name} is missing from docs/configuration.md"
        check_default(Settings, field, shown=service[name], name=name)

    # Every other row names a variable docker-compose.yml or .env.example reads.
    elsewhere = set(re.findall(r"\$\{(\w+)", text_of("docker-compose.yml")))
    elsewhere |= set(re.findall(r"^#? ?([A-Z][A-Z0-9_]+)=", text_of(".env.example"), re.M))
    unknown = set(service) - {field.upper() for field in Settings.model_fields} - elsewhere
    assert unknown == set()


@pytest.mark.usefixtures("no_sandbox_variables")
def test_every_sandbox_setting_is_in_its_table_with_its_default() -> None:
    rows = configuration_tables()[SANDBOX_SECTION]
    variables = {sandbox_variable(field): field for field in SandboxConfig.model_fields}

    assert set(rows) == set(variables)
    for name, field in variables.items():
        check_default(SandboxConfig, field, shown=rows[name], name=name)


# --- schema revisions ------------------------------------------------------------------------


@cache
def migrations() -> ScriptDirectory:
    return ScriptDirectory(str(ROOT / "alembic"))


def test_the_migrations_table_lists_every_revision() -> None:
    shown = re.findall(r"^\| `(\w+)` \| `([^`]+\.py)` \|", text_of("docs/operations.md"), re.M)

    scripts = migrations().walk_revisions()
    shipped = [(script.revision, Path(script.path).name) for script in scripts]
    assert sorted(shown) == sorted(shipped)


def test_every_schema_revision_shown_is_the_head() -> None:
    head = ", ".join(sorted(migrations().get_heads()))
    shown = [
        (page.name, match.group(1) or match.group(2))
        for page in PAGES
        for match in re.finditer(
            r'"schema_version": "([^"]+)"|schema at head \(([^)]+)\)', page.read_text()
        )
    ]

    assert shown, "no sample shows a schema revision"
    for page, revision in shown:
        assert revision == head, f"{page} shows schema {revision}; the head is {head}"


def test_the_ready_sample_has_the_shape_of_a_real_answer(api: ServiceClient) -> None:
    real = api.get("/ready").json()
    shown = json.loads(sample("/ready"))

    assert shown.keys() == real.keys()
    assert shown["checks"] == real["checks"]
    assert shown["schema_version"] == real["schema_version"]
    assert shown["backlog"].keys() == real["backlog"].keys()
    assert real["instagram_token"].keys() <= shown["instagram_token"].keys()


# --- fab doctor ------------------------------------------------------------------------------


def doctor_lines(text: str) -> str:
    """Doctor output with what differs between runs and setups made alike."""
    text = re.sub(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2} UTC", "<time> UTC", text)
    text = re.sub(r"expires in -?\d+ days", "expires in <n> days", text)
    text = re.sub(r"available until \d{4}-\d{2}-\d{2}", "available until <date>", text)
    text = re.sub(r"@[\w.]+", "@<username>", text)
    text = re.sub(r"\b\d{12,}\b", "<id>", text)
    return text.strip()


def test_the_fab_doctor_sample_is_what_doctor_prints(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    sandbox: BackgroundServer,
    meta: ServiceClient,
    database_url: str,
) -> None:
    # The sample's setup: the app-scoped id configured as the account id, and the account
    # subscribed to every webhook field but message_edit.
    token = {"Authorization": f"Bearer {USER_TOKEN}"}
    app_scoped_id = meta.get("/v25.0/me", params={"fields": "user_id"}, headers=token).json()["id"]
    fields = ",".join(field for field in WEBHOOK_FIELDS if field != "message_edit")
    subscribed = meta.post(
        "/v25.0/me/subscribed_apps", params={"subscribed_fields": fields}, headers=token
    )
    assert subscribed.status_code == 200, subscribed.text
    for name, value in {
        "DATABASE_URL": database_url,
        "INSTAGRAM_APP_SECRET": APP_SECRET,
        "INSTAGRAM_WEBHOOK_TOKEN": VERIFY_TOKEN,
        "INSTAGRAM_USER_TOKEN": USER_TOKEN,
        "INSTAGRAM_ACCOUNT_ID": app_scoped_id,
        "INSTAGRAM_GRAPH_URL": sandbox.url,
        "INSTAGRAM_GET_RETRIES": "0",
        "API_KEY": API_KEY,
    }.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    try:
        exit_code = cli.main(["doctor"])
    finally:
        get_settings.cache_clear()
    printed = capsys.readouterr().out

    assert exit_code == 1
    assert doctor_lines(sample("fab doctor")) == doctor_lines(printed)


# --- endpoints, error codes, metrics, tasks --------------------------------------------------


def route_key(method: str, path: str) -> tuple[str, str]:
    """A route whatever its path parameters are called: `/users/{}`."""
    return method, re.sub(r"\{[^}]*\}", "{}", path)


@cache
def service_app() -> FastAPI:
    """The service's routes, built with settings it accepts (nothing is started)."""
    return create_app(Settings(_env_file=None, api_key=API_KEY, database_url="sqlite://"))


def flat_routes(app: FastAPI) -> Iterator[tuple[str, set[str]]]:
    """(path, methods) of every route, those of included routers too (FastAPI keeps an
    included router as one entry of `app.routes`)."""
    for route in app.routes:
        included = getattr(route, "effective_route_contexts", None)
        if included is None:
            yield getattr(route, "path", ""), set(getattr(route, "methods", None) or ())
            continue
        for context in included():
            yield context.path, set(getattr(context.original_route, "methods", None) or ())


def routes_of(app: FastAPI) -> set[tuple[str, str]]:
    return {
        route_key(method, path)
        for path, methods in flat_routes(app)
        for method in methods
        if method != "HEAD" and not path.startswith("/docs/oauth2")
    }


def test_every_endpoint_is_in_the_api_reference_and_nothing_else() -> None:
    table = section(text_of("docs/api.md"), "Every endpoint")
    documented = set()
    for row in re.findall(r"^\| (.+?) \|", table, re.M):
        for method, path in re.findall(r"`([A-Z]+) (/[^`?]*)", row):
            documented.add(route_key(method, path))
            for also in re.findall(r"\(also `(/[^`]+)`\)", row):
                documented.add(route_key(method, also))

    assert documented == routes_of(service_app())


def local_urls() -> Iterator[tuple[str, str, str]]:
    """(page, port, path) of every loopback URL the README and docs show."""
    for page in PAGES:
        for port, path in re.findall(
            r"(?:localhost|127\.0\.0\.1):(800[01])(/[^\s'\"`?)>\\]*)", page.read_text()
        ):
            yield page.name, port, path


def route_pattern(path: str) -> str:
    """A regex for the route's paths; a Graph `{version}` is `v25.0`, not any segment."""
    pattern = re.escape(path).replace(r"\{version\}", r"v\d+\.\d+")
    return re.sub(r"\\\{[^}]*\\\}", "[^/]+", pattern)


def test_every_url_the_docs_show_is_a_route() -> None:
    sandbox_app = create_sandbox_app(SandboxConfig(_env_file=None))
    apps = {"8000": service_app(), "8001": sandbox_app}
    patterns = {
        port: [
            re.compile(route_pattern(path))
            for path, _ in flat_routes(app)
            if ":path}" not in path  # catch-alls would match anything
        ]
        for port, app in apps.items()
    }

    for page, port, path in local_urls():
        assert any(pattern.fullmatch(path) for pattern in patterns[port]), (
            f"{page}: :{port}{path} is no route"
        )


# `code = "x"` (a class), `code="x"` (an argument), `"code": "x"`, `error_body(..., "x")`.
ERROR_CODE = re.compile(
    r'\bcode\s*=\s*"([a-z_]+)"|"code":\s*"([a-z_]+)"|error_body\([^)\n]*, "([a-z_]+)"\)'
)


def error_codes_in_the_code() -> set[str]:
    found = set()
    for source in (ROOT / "app").rglob("*.py"):
        if "sandbox" in source.parts:
            continue
        found |= set(ERROR_CODE.findall(source.read_text()))
    return {code for match in found for code in match if code}


def test_every_error_code_is_in_the_api_reference() -> None:
    errors = section(text_of("docs/api.md"), "Errors")
    in_code = error_codes_in_the_code()
    table_codes = {
        code
        for row in re.findall(r"^\| \d{3} \| (.+?) \|", errors, re.M)
        for code in re.findall(r"`([a-z_]+)`", re.sub(r"\(.*?\)", "", row))
    }

    assert in_code - set(re.findall(r"`([a-z_]+)`", errors)) == set()
    assert table_codes - in_code == set()


def metric_names() -> set[str]:
    every_state = metrics.StateSample(
        database_up=True,
        schema_at_head=True,
        token_days_left=1,
        token_invalid=False,
        profiles_due=0,
        failed_deliveries=0,
        event_backlog={"we_1": 0},
        last_webhook_timestamp=1,
    )
    exposed = metrics.render(every_state).decode()
    return set(re.findall(r"^# HELP (insta_\w+)", exposed, re.M))


def test_every_metric_is_in_the_operations_guide() -> None:
    table = section(text_of("docs/operations.md"), "Metrics")
    shown = set(re.findall(r"`(insta_\w+)`", table))

    assert shown == metric_names()


def test_every_fab_task_is_in_the_operations_guide() -> None:
    spec = importlib.util.spec_from_file_location("fabfile_under_test", ROOT / "fabfile.py")
    assert spec is not None
    assert spec.loader is not None
    fabfile = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fabfile)
    tasks = {value.name for value in vars(fabfile).values() if isinstance(value, Task)}
    table = section(text_of("docs/operations.md"), "Tasks")

    assert set(re.findall(r"^\| `fab (\w+)", table, re.M)) == tasks


# --- links -----------------------------------------------------------------------------------


def github_anchors(page: Path) -> set[str]:
    """The anchors GitHub gives the page's headings (`## The window` → `the-window`)."""
    anchors: set[str] = set()
    for heading in re.findall(r"^#+ (.+)$", without_code(page.read_text()), re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        unique, n = slug, 0
        while unique in anchors:
            n += 1
            unique = f"{slug}-{n}"
        anchors.add(unique)
    return anchors


def test_every_relative_link_points_at_a_file_and_heading() -> None:
    checked = 0
    for page in PAGES:
        for target in re.findall(r"\]\(([^)\s]+)\)", without_code(page.read_text())):
            if re.match(r"[a-z]+:", target):
                continue
            path, _, anchor = target.partition("#")
            linked = (page.parent / path).resolve() if path else page
            assert linked.exists(), f"{page.name}: {target} does not exist"
            if anchor:
                assert anchor in github_anchors(linked), f"{page.name}: no heading for {target}"
            checked += 1

    assert checked > 20


def test_the_readme_links_every_page_of_the_docs() -> None:
    linked = set(re.findall(r"\]\((docs/[^)#]+)", README.read_text()))

    assert linked == {f"docs/{page.name}" for page in PAGES[1:]}


def test_the_readme_keeps_the_quick_start_ci_runs() -> None:
    quick_start = section(README.read_text(), "Quick start")

    assert re.search(r"^fab demo\b", quick_start, re.M)
    assert re.search(r"^fab test\b", quick_start, re.M)  # .ci/run runs exactly this
    assert "TEST_DATABASE_URL=postgresql+psycopg2://" in quick_start


# --- the README's tour -----------------------------------------------------------------------

# What differs between runs: ids, mids, times and cursors.
VOLATILE = re.compile(r"(^|_)(id|mid)$|^(before|after|next_cursor)$|_(at|until|ms)$")


def volatile_blanked(value: Any, key: str = "") -> Any:
    if isinstance(value, dict):
        return {name: volatile_blanked(item, name) for name, item in value.items()}
    if isinstance(value, list):
        return [volatile_blanked(item, key) for item in value]
    return "…" if VOLATILE.search(key) and value is not None else value


class Curl(BaseModel):
    method: str
    url: str
    headers: dict[str, str]
    data: str | None


def parse_curl(command: str) -> Curl:
    """The few curl options the tour uses."""
    words = shlex.split(command)
    assert words[0] == "curl", command
    method, url, headers, data = "GET", "", {}, None
    options = iter(words[1:])
    for word in options:
        if word == "-X":
            method = next(options)
        elif word == "-H":
            name, _, value = next(options).partition(":")
            headers[name.strip()] = value.strip()
        elif word == "-d":
            data = next(options)
            method = "POST" if method == "GET" else method
        elif word == "-s":
            continue
        else:
            assert not word.startswith("-"), f"the tour test does not know curl's {word}"
            url = word
    return Curl(method=method, url=url, headers=headers, data=data)


def tour_steps() -> list[tuple[list[str], str | None]]:
    """Each bash block of the tour (its commands) and the JSON block shown after it, if any."""
    tour = section(README.read_text(), "A short tour")
    blocks = re.findall(r"^```(\w*)\n(.*?)^```", tour, re.M | re.S)
    steps = []
    for index, (language, body) in enumerate(blocks):
        if language != "bash":
            continue
        commands = [
            line.strip()
            for line in body.replace("\\\n", " ").splitlines()
            if line.strip().startswith("curl")
        ]
        shown = blocks[index + 1] if index + 1 < len(blocks) else ("", "")
        steps.append((commands, shown[1] if shown[0] == "json" else None))
    return steps


def test_the_readme_tour_answers_as_shown(start_service: StartService, meta: ServiceClient) -> None:
    # The service and the sandbox, as `fab demo` runs them: the service with an API key.
    api = ServiceClient(start_service(api_key=API_KEY, allow_open_api=False).url, api_key=API_KEY)
    clients = {"8000": api, "8001": meta}
    steps = tour_steps()
    assert len(steps) >= 3

    def profiles_fetched() -> bool:
        return api.get("/ready").json()["backlog"]["profiles_due"] == 0

    for commands, shown in steps:
        answer: Any = None
        for command in commands:
            curl = parse_curl(command)
            where = re.fullmatch(r"(?:http://)?localhost:(800[01])(/.*)", curl.url)
            assert where, f"the tour calls {curl.url}"
            port, path = where.groups()
            # A reader is slower than the background profile fetcher: wait for it.
            wait_until(profiles_fetched, what="the profile fetcher")
            headers = {
                name: value.replace("$API_KEY", API_KEY) for name, value in curl.headers.items()
            }
            response = clients[port].request(curl.method, path, headers=headers, data=curl.data)
            assert response.ok, f"{command}: {response.status_code} {response.text}"
            answer = response.json()
            if isinstance(answer, dict) and "delivery" in answer:
                assert answer["delivery"]["status_code"] == 200, answer["delivery"]
        if shown is not None:
            assert volatile_blanked(json.loads(shown)) == volatile_blanked(answer), commands
