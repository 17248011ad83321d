"""Schemathesis over the live service's OpenAPI document: valid and invalid requests for every
operation (well over 1,000 in all), none answered with a 5xx, every answer conforming to the
status codes, content types and schemas the document declares.

The service runs with an API key (sent with every request) and the sandbox as its Graph API.
Every broken answer is collected with the exact request (as curl) before the test fails.
"""

import warnings
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import Failure, FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from app.sandbox.server import BackgroundServer
from tests.conftest import StartService
from tests.helpers import API_KEY, ServiceClient, customer_writes, new_customer

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
EXAMPLES_PER_OPERATION = {GenerationMode.POSITIVE: 50, GenerationMode.NEGATIVE: 30}
MINIMUM_REQUESTS = 1000
# Gaps between the document and the service found by this run and reported; they are shown
# as warnings instead of failing the suite. Fix the document (or the answer), then delete the
# entry: anything not listed here fails the test.
KNOWN_GAPS: set[tuple[str, str, int, str]] = set()
REQUEST_TIMEOUT_SECONDS = 15
# A live event stream never ends: schemathesis reads it until the timeout passes, then checks
# what arrived (status, content type, the events' framing). A second shows the opening.
STREAM_SECONDS = 1
# The requests drawn from a document, by its text. Drawing is derandomized and never looks at
# an answer, so every run draws the very same requests from the same document: the second
# backend is sent those the first one drew, without the half minute drawing them again costs.
DRAWN: dict[str, list[Any]] = {}


@pytest.fixture
def service(start_service: StartService) -> BackgroundServer:
    return start_service(api_key=API_KEY, log_level="WARNING")


@pytest.fixture
def session() -> Iterator[requests.Session]:
    with requests.Session() as session:
        yield session


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_generated_requests_get_no_5xx_and_answers_match_the_schema(
    service: BackgroundServer, meta: ServiceClient, session: requests.Session
) -> None:
    # A customer who wrote in, so some generated requests reach real data.
    customer = new_customer(meta)
    customer_writes(meta, customer["id"], "hello from the fuzz run")
    document = session.get(f"{service.url}/openapi.json").text
    schema = schemathesis.openapi.from_url(f"{service.url}/openapi.json")
    headers = {"Authorization": f"Bearer {API_KEY}"}
    sent = 0
    # The first request of each kind of failure: (method, path, status, check) → curl.
    broken: dict[tuple[str, str, int, str], str] = {}

    def exercise(case: Any) -> None:
        nonlocal sent
        response = case.call(
            base_url=service.url,
            session=session,
            headers=headers,
            timeout=STREAM_SECONDS
            if case.operation.path.endswith("/stream")
            else REQUEST_TIMEOUT_SECONDS,
        )
        sent += 1
        try:
            case.validate_response(response, checks=CHECKS, headers=headers)
        except (Failure, FailureGroup) as error:
            failures = error.exceptions if isinstance(error, FailureGroup) else [error]
            for failure in failures:
                title = getattr(failure, "title", type(failure).__name__)
                key = (case.method, case.operation.path, response.status_code, title)
                if key not in broken:
                    broken[key] = case.as_curl_command(headers=headers)[:1500]

    if document in DRAWN:
        for case in DRAWN[document]:
            exercise(case)
    else:
        drawn = draw_and_exercise(schema, exercise)
        DRAWN[document] = drawn

    assert sent >= MINIMUM_REQUESTS
    for key in sorted(broken.keys() & KNOWN_GAPS):
        method, path, status, title = key
        warnings.warn(
            f"known document gap: {method} {path} -> {status}: {title}: {broken.pop(key)}",
            stacklevel=1,
        )
    assert not broken, f"{len(broken)} kinds of broken answers (of {sent} requests):\n" + "\n".join(
        f"{method} {path} -> {status}: {title}\n    {curl}"
        for (method, path, status, title), curl in broken.items()
    )


def draw_and_exercise(schema: Any, exercise: Callable[[Any], None]) -> list[Any]:
    """Draw valid and invalid requests for every operation, exercising each; all of them."""
    drawn: list[Any] = []
    for result in schema.get_all_operations():
        operation = result.ok()
        for mode, examples in EXAMPLES_PER_OPERATION.items():

            @settings(
                max_examples=examples,
                deadline=None,
                database=None,
                derandomize=True,
                phases=[Phase.explicit, Phase.generate],
                suppress_health_check=list(HealthCheck),
            )
            @given(case=operation.as_strategy(generation_mode=mode))
            def run(case: Any) -> None:
                drawn.append(case)
                exercise(case)

            try:
                run()
            except Unsatisfiable:
                # Nothing to make invalid: an operation without parameters or body.
                assert mode is GenerationMode.NEGATIVE
    return drawn
