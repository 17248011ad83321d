"""Log format (LOG_FORMAT=text|json), the request id on every line, and URL token redaction."""

import json
import logging
import re
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

APP_LOGGER = "app"
# uvicorn's own lines (startup, errors; `uvicorn.error` propagates to it) go through the same
# handler in JSON mode.
SERVER_LOGGER = "uvicorn"

# The request being served (set by the request middleware); "-" outside requests.
request_id: ContextVar[str] = ContextVar("request_id", default="-")

# Attributes every LogRecord has; anything else was passed with `extra=` and is a field.
_RECORD_ATTRIBUTES = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", None, None)).keys() | {"message", "asctime"}
)
# Query parameters that hold secrets: Meta's token parameter, the webhook handshake's verify
# token, an app secret.
_SECRET_IN_URL = re.compile(r"((?:access_token|hub\.verify_token|client_secret)=)[^&\s'\"]+")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"
# Control characters (line breaks, escape sequences) in logged text: written as escapes, so
# what a caller sends (a path with %0A, a webhook field) cannot forge or garble a log line.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def escape_controls(text: str) -> str:
    """`text` with every control character written as an escape (`\\n`, `\\x1b`, ...)."""
    return _CONTROL.sub(lambda match: match.group().encode("unicode_escape").decode(), text)


class SafeTextFormatter(logging.Formatter):
    """TEXT_FORMAT with the message's control characters escaped: one record, one line (a
    traceback still follows on lines of its own)."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = escape_controls(record.message)
        return super().formatMessage(record)


class RequestIdFilter(logging.Filter):
    """Stamp the current request id on each record (`%(request_id)s`, the `request_id` field)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = request_id.get()
        return True


class UrlTokenRedactor(logging.Filter):
    """Blank out secrets in the query strings of URLs that urllib3 logs (every request line;
    the token refresh carries the token in its query string, as Meta documents it)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.args:
            record.args = tuple(
                _SECRET_IN_URL.sub(r"\1***", arg) if isinstance(arg, str) else arg
                for arg in (record.args if isinstance(record.args, tuple) else (record.args,))
            )
        if isinstance(record.msg, str):
            record.msg = _SECRET_IN_URL.sub(r"\1***", record.msg)
        return True


def redact_urllib3_logs() -> None:
    """Install `UrlTokenRedactor` on urllib3's loggers (once; filters do not propagate)."""
    for name in ("urllib3.connectionpool", "urllib3.util.retry"):
        logger = logging.getLogger(name)
        if not any(isinstance(existing, UrlTokenRedactor) for existing in logger.filters):
            logger.addFilter(UrlTokenRedactor())


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request_id and extra fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _RECORD_ATTRIBUTES and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


class _AppHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """The handler `configure_logging` owns (found again, not added twice, on reconfiguration)."""


def configure_logging(level: str, *, log_format: str = "text") -> None:
    """Send the service's logs to stderr in `log_format`, at `level`."""
    logger = logging.getLogger(APP_LOGGER)
    handler = next((h for h in logger.handlers if isinstance(h, _AppHandler)), None)
    if handler is None:
        handler = _AppHandler()
        handler.addFilter(RequestIdFilter())
        logger.addHandler(handler)
    handler.setFormatter(
        JsonFormatter() if log_format == "json" else SafeTextFormatter(TEXT_FORMAT)
    )
    logger.setLevel(level.upper())
    server_logger = logging.getLogger(SERVER_LOGGER)
    if log_format == "json":
        server_logger.handlers = [handler]
    elif handler in server_logger.handlers:
        # Back from JSON (tests build many apps): uvicorn's lines in plain text again.
        plain = logging.StreamHandler()
        plain.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
        server_logger.handlers = [plain]
    redact_urllib3_logs()
