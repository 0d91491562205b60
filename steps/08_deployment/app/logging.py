"""Logging set-up: JSON lines or readable console lines, each tagged with its request id."""

import json
import logging
import sys
import threading
from collections import deque
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import TextIO

from app.config import Settings

# The id of the request being served; RequestObserverMiddleware sets it for each request.
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


class BatchingLogHandler(logging.Handler):
    """Format each record where it is logged; write the lines from a thread, in batches.

    The event loop must never wait for stderr: a pipe whose reader falls behind
    blocks its writer, and with it every request. One write() per line also
    costs more than formatting the line. So emit() only formats the line (in
    the request's context, which has its id) and appends it to a deque; a
    thread writes what has piled up every `interval` seconds, in one call.
    The standard library's QueueListener wakes its thread for every record,
    which measured slower than writing in the loop.
    """

    def __init__(
        self,
        formatter: logging.Formatter,
        *,
        stream: TextIO | None = None,
        interval: float = 0.1,
        max_pending: int = 100_000,
    ) -> None:
        super().__init__()
        self.setFormatter(formatter)
        self.addFilter(RequestIdFilter())
        self.stream = stream or sys.stderr
        self.interval = interval
        # Bounded: a reader that stopped reading must not take the memory too.
        self.max_pending = max_pending
        # Only emit() raises _dropped and only flush() raises _reported: no lock between them.
        self._dropped = self._reported = 0
        self._lines: deque[str] = deque()  # append and popleft are thread-safe
        self._write_lock = threading.Lock()  # one writer at a time: the thread, or flush()
        self._stopped = threading.Event()
        self._writer = threading.Thread(target=self._write_forever, name="log-writer", daemon=True)
        self._writer.start()

    def emit(self, record: logging.LogRecord) -> None:
        """Format the record and queue its line; past max_pending, count it as dropped."""
        if len(self._lines) >= self.max_pending:
            self._dropped += 1
            return
        try:
            self._lines.append(self.format(record))
        except RecursionError:  # as logging's own handlers do: never swallow a recursion
            raise
        except Exception:
            self.handleError(record)

    def flush(self) -> None:
        """Write every queued line in one call (the thread calls it every interval)."""
        with self._write_lock:
            lines = [self._lines.popleft() for _ in range(len(self._lines))]
            dropped = self._dropped - self._reported
            self._reported += dropped
            if dropped:
                lines.append(self._dropped_line(dropped))
            if not lines:
                return
            try:
                self.stream.write("\n".join(lines) + "\n")
                self.stream.flush()
            except (OSError, ValueError):
                pass  # stderr is closed or its reader is gone: nowhere else could show them

    def _dropped_line(self, dropped: int) -> str:
        record = logging.LogRecord(
            "app.logging",
            logging.WARNING,
            __file__,
            0,
            "%d log lines were dropped: stderr is not being read fast enough.",
            (dropped,),
            None,
        )
        record.request_id = "-"
        return self.format(record)

    def _write_forever(self) -> None:
        while not self._stopped.wait(self.interval):
            self.flush()
        self.flush()

    def stop(self) -> None:
        """Tell the writer thread to write every queued line and end, without waiting for it."""
        self._stopped.set()

    def close(self) -> None:
        """Stop the writer thread once it has written every queued line."""
        self.stop()
        if self._writer.is_alive() and self._writer is not threading.current_thread():
            self._writer.join()
        super().close()


def flush_logs() -> None:
    """Write out every queued log line now (the lifespan calls it last, at shutdown)."""
    # uvicorn ends with the signal that stopped it: no atexit, so no logging.shutdown().
    for handler in logging.getLogger().handlers:
        handler.flush()


def configure_logging(settings: Settings) -> None:
    """Send every log record to stderr in the configured format and level, from a writer thread.

    The service never passes passwords, tokens or secrets to a logger; log
    lines carry ids, routes and timings only.
    """
    # No line shows the call site: skip finding it (the logging HOWTO's "Optimization").
    logging._srcfile = None
    logging.logProcesses = logging.logThreads = logging.logMultiprocessing = False
    handler = BatchingLogHandler(
        JsonFormatter() if settings.log_format == "json" else ConsoleFormatter()
    )
    root = logging.getLogger()
    # Replace our own handler on a second call (tests build many apps), keep anyone else's.
    for existing in [h for h in root.handlers if isinstance(h, BatchingLogHandler)]:
        root.removeHandler(existing)
        # Stopped, not joined: its thread writes out what it still holds and ends
        # on its own, so an app built inside a running event loop never waits for it.
        existing.stop()
    root.addHandler(handler)
    root.setLevel(settings.log_level)
