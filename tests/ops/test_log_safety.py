"""What a caller sends cannot forge log lines, and statement parameters (message texts) never
reach an error's text or a log."""

import logging

import pytest
from sqlalchemy import exc as sa_exc
from sqlalchemy import insert

from app.config import Settings
from app.db import create_db_engine
from app.logs import TEXT_FORMAT, SafeTextFormatter, escape_controls
from app.models import User
from app.sandbox.server import BackgroundServer
from tests.helpers import ServiceClient


def test_control_characters_are_escaped() -> None:
    assert escape_controls("a\nb\r\x1b[31m\x00\x7fc") == "a\\nb\\r\\x1b[31m\\x00\\x7fc"
    assert escape_controls("plain /path ✓") == "plain /path ✓"


def test_a_path_with_an_encoded_newline_logs_one_escaped_line(
    service: BackgroundServer, caplog: pytest.LogCaptureFixture
) -> None:
    forged = "/x%0A2026-01-01 00:00:00,000 INFO app.access [-] GET /admin 200 0.1ms%1B[2J"
    with caplog.at_level(logging.DEBUG), ServiceClient(service.url) as client:
        client.get(forged)

    [record] = [r for r in caplog.records if r.name == "app.access"]
    line = SafeTextFormatter(TEXT_FORMAT).format(record)
    assert "\n" not in line
    assert "\x1b" not in line
    assert "/x\\n2026-01-01" in record.path
    assert "\\x1b[2J" in record.path


def test_the_text_format_escapes_any_message() -> None:
    record = logging.LogRecord("app", logging.INFO, __file__, 1, "event %s", ("a\nFAKE",), None)
    record.request_id = "-"

    assert "\n" not in SafeTextFormatter(TEXT_FORMAT).format(record)


def test_database_errors_never_hold_statement_parameters(database_url: str) -> None:
    engine = create_db_engine(Settings(_env_file=None, database_url=database_url))
    secret_text = "my card number is 4242 4242 4242 4242"
    try:
        with engine.begin() as connection:
            connection.execute(insert(User), [{"id": "1", "username": secret_text}])
        with pytest.raises(sa_exc.IntegrityError) as raised, engine.begin() as connection:
            connection.execute(insert(User), [{"id": "1", "username": secret_text}])
    finally:
        engine.dispose()

    assert secret_text not in str(raised.value)
    assert "hidden" in str(raised.value).lower()
