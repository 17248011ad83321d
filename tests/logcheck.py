"""Collect log records and find secrets in them (the whole test run is checked: conftest.py)."""

import logging
import re
from collections.abc import Iterable

# Instagram user tokens start with IGAA (the tests' tokens and the sandbox's refreshed ones too).
TOKEN_PATTERN = re.compile(r"IGAA[A-Za-z0-9_-]{6,}")
_STANDARD_ATTRIBUTES = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None)))


def record_text(record: logging.LogRecord) -> str:
    """Everything a handler could print of a record: message, extra fields, traceback."""
    try:
        message = record.getMessage()
    except (TypeError, ValueError):
        message = f"{record.msg} {record.args}"
    extras = [
        f"{key}={value}" for key, value in vars(record).items() if key not in _STANDARD_ATTRIBUTES
    ]
    parts = [message, *extras]
    if record.exc_info:
        parts.append(logging.Formatter().formatException(record.exc_info))
    if record.stack_info:
        parts.append(record.stack_info)
    return " ".join(parts)


class LogCollector(logging.Handler):
    """Keeps every record that holds one of `secrets`, or something shaped like a token."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__(level=logging.DEBUG)
        self.secrets = tuple(secrets)
        self.seen = 0
        self.leaking: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        text = record_text(record)
        self.seen += 1
        if any(secret in text for secret in self.secrets) or TOKEN_PATTERN.search(text):
            self.leaking.append(f"{record.name} {record.levelname}: {text[:500]}")
