"""Logs: one line per request with a request id, JSON when asked, and no secret anywhere (the
whole run is checked too: tests/conftest.py fails it when a record holds a secret)."""

import json
import logging
import re
from typing import Any

import pytest

from app.logs import JsonFormatter, configure_logging
from tests.conftest import InProcess
from tests.helpers import APP_SECRET, USER_TOKEN, VERIFY_TOKEN, Clock, ServiceClient
from tests.logcheck import LogCollector
from tests.ops.conftest import Process, a_day_later, update_sandbox_tokens
from tests.stack import SharedService


def access_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [record for record in caplog.records if record.name == "app.access"]


def test_each_request_logs_one_line_with_its_request_id(
    service: SharedService, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG), ServiceClient(service.url) as client:
        given = client.get(
            "/messages", params={"user_id": "1187429836452190"}, headers={"X-Request-ID": "req-42"}
        )
        made = client.get("/webhook", params={"hub.verify_token": VERIFY_TOKEN})

    assert given.headers["X-Request-ID"] == "req-42"
    assert re.fullmatch(r"[0-9a-f]{32}", made.headers["X-Request-ID"])
    first, second = access_records(caplog)
    assert (first.method, first.path, first.status, first.request_id) == (
        "GET",
        "/messages",
        404,
        "req-42",
    )
    assert first.levelname == "INFO"
    assert first.duration_ms >= 0
    assert first.getMessage().startswith("GET /messages 404 ")
    assert (second.path, second.status) == ("/webhook", 422)
    assert second.request_id == made.headers["X-Request-ID"]
    assert VERIFY_TOKEN not in caplog.text  # the path is logged without its query string


def test_a_request_id_that_is_not_a_plain_token_is_replaced(
    service: SharedService, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG), ServiceClient(service.url) as client:
        answer = client.get("/health", headers={"X-Request-ID": "bad id\twith spaces"})

    assert re.fullmatch(r"[0-9a-f]{32}", answer.headers["X-Request-ID"])
    (record,) = access_records(caplog)
    assert record.levelname == "DEBUG"  # probes do not flood the log at INFO


def test_graph_errors_carry_metas_ids_and_the_request_id(
    service: SharedService, meta: ServiceClient, caplog: pytest.LogCaptureFixture
) -> None:
    update_sandbox_tokens(meta, revoked=True)
    with caplog.at_level(logging.DEBUG), ServiceClient(service.url) as client:
        client.get(
            "/user", params={"user_id": "1999999999999998"}, headers={"X-Request-ID": "req-190"}
        )

    failed = next(r for r in caplog.records if "failed: http=400" in r.getMessage())
    assert "code=190 subcode=460" in failed.getMessage()
    assert "fbtrace_id=" in failed.getMessage()
    assert failed.request_id == "req-190"  # set by the filter of the service's handler
    marked = next(r for r in caplog.records if "re-authentication needed" in r.getMessage())
    assert marked.levelname == "ERROR"


def test_the_json_format_is_one_object_per_line(
    service: SharedService, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG), ServiceClient(service.url) as client:
        client.get("/messages", params={"user_id": "1"}, headers={"X-Request-ID": "req-json"})
    (record,) = access_records(caplog)

    line = JsonFormatter().format(record)

    entry = json.loads(line)
    assert "\n" not in line
    assert entry["level"] == "INFO"
    assert entry["logger"] == "app.access"
    assert entry["request_id"] == "req-json"
    assert (entry["method"], entry["path"], entry["status"]) == ("GET", "/messages", 404)
    assert entry["message"].startswith("GET /messages 404")
    assert entry["time"].endswith("+00:00")


def test_log_format_json_switches_the_service_and_uvicorn_handlers(
    in_process: InProcess, service_environment: dict[str, Any]
) -> None:
    in_process(service_environment, log_format="json", lifespan=True)
    app_handlers = logging.getLogger("app").handlers
    assert any(isinstance(handler.formatter, JsonFormatter) for handler in app_handlers)
    assert any(
        isinstance(handler.formatter, JsonFormatter)
        for handler in logging.getLogger("uvicorn").handlers
    )

    configure_logging("INFO", log_format="text")
    assert not any(
        isinstance(handler.formatter, JsonFormatter)
        for handler in [*logging.getLogger("app").handlers, *logging.getLogger("uvicorn").handlers]
    )


def test_the_refresh_call_keeps_the_token_out_of_the_logs(
    process: Process, meta: ServiceClient, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    a_day_later(process, meta, clock)

    with caplog.at_level(logging.DEBUG):
        assert process.refresher.run_once() is True
        process.instagram.get_me()

    fresh = meta.get("/_sandbox/tokens").json()[-1]["value"]
    assert "access_token=***" in caplog.text  # urllib3's request line, redacted
    for secret in (USER_TOKEN, fresh):
        assert secret not in caplog.text


def test_the_run_wide_check_finds_secrets_and_tokens() -> None:
    collector = LogCollector(secrets=[APP_SECRET])
    logger = logging.getLogger("tests.leak")
    logger.propagate = False  # kept out of this run's own check
    logger.addHandler(collector)
    logger.setLevel(logging.DEBUG)
    try:
        logger.info("all fine")
        logger.debug("signed with %s", APP_SECRET)
        logger.warning("call failed", extra={"url": "https://x/?access_token=IGAAabcdef123456"})
        try:
            raise ValueError(APP_SECRET)
        except ValueError:
            logger.exception("boom")
    finally:
        logger.removeHandler(collector)

    assert collector.seen == 4
    assert len(collector.leaking) == 3
