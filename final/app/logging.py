"""Logging set-up: JSON lines or readable console lines, each tagged with its request id."""

import json
import logging
import sys
from contextvars import ContextVar
from datetime import UTC, datetime

from app.config import Settings

# The id of the request being served; RequestIdMiddleware sets it for each request.
request_id_var: ContextVar[str] = ContextVar("request_id", default="-")

# Attributes every LogRecord has; anything else was passed with `extra=` and is logged as a field.
_STANDARD_ATTRIBUTES = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
    "request_id",
    "taskName",
}


class RequestIdFilter(logging.Filter):
    """Add the current request id to every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Tag the record; never drop it."""
        record.request_id = request_id_var.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: what log collectors parse without configuration."""

    def format(self, record: logging.LogRecord) -> str:
        """Render the record, its `extra=` fields and any traceback as one JSON line."""
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", "-"),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD_ATTRIBUTES:
                entry[key] = value
        if record.exc_info:
            entry["exc_info"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class ConsoleFormatter(logging.Formatter):
    """A readable line for a developer's terminal, with the `extra=` fields appended."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s [%(request_id)s] %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        """Render the record followed by its `extra=` fields as key=value pairs."""
        line = super().format(record)
        extras = " ".join(
            f"{key}={value}"
            for key, value in record.__dict__.items()
            if key not in _STANDARD_ATTRIBUTES
        )
        return f"{line} {extras}" if extras else line


class _AppHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """The handler configure_logging installs, recognisable so a second call replaces it."""


def configure_logging(settings: Settings) -> None:
    """Send every log record to stderr in the configured format and level.

    The service never passes passwords, tokens or secrets to a logger; log
    lines carry ids, routes and timings only.
    """
    handler = _AppHandler(sys.stderr)
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(JsonFormatter() if settings.log_format == "json" else ConsoleFormatter())
    root = logging.getLogger()
    # Replace our own handler on a second call (tests build many apps), keep anyone else's.
    for existing in [h for h in root.handlers if isinstance(h, _AppHandler)]:
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(settings.log_level)
