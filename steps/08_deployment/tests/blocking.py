"""The blocking-call check: what fails a test, and the few calls it allows, each with the reason."""

import logging
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from blockbuster import BlockBuster, BlockingError, blockbuster_ctx

# (the file and functions where any blocking call is let through, why)
ALLOWED: list[tuple[str, set[str], str]] = [
    (
        "asyncpg/connect_utils.py",
        {"_parse_connect_dsn_and_args"},
        "asyncpg looks for ~/.pgpass and ~/.postgresql/ certificates when it opens a"
        " connection: a few stat calls per pooled connection, not per request.",
    ),
    (
        "pydantic/networks.py",
        {"import_email_validator"},
        "pydantic reads email-validator's version from its package metadata when it"
        " builds an EmailStr schema: once per process, for the first /openapi.json.",
    ),
    (
        "migrations/env.py",
        {"run_migrations_online", "_run_migrations"},
        "Alembic runs the migrations in an event loop of its own (env.py) and reads"
        " the revision files from disk there: a command-line tool, never the service.",
    ),
]


def allow_known_blocking(detector: BlockBuster) -> None:
    """Let through the few blocking calls that are not the service's to fix."""
    for filename, functions, _why in ALLOWED:
        for call in detector.functions.values():
            call.can_block_in(filename, functions)


class CaughtBlockingCalls(logging.Handler):
    """The BlockingErrors the app caught itself and logged as a 500.

    A BlockingError raised in a route does not reach the test: the app's error
    handling turns it into a 500 and logs the traceback. A test that expects a
    5xx would then pass; this handler sees the logged error, so it cannot.
    """

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.calls: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, BlockingError):
            self.calls.append(str(error))


@contextmanager
def blocking_calls_fail() -> Iterator[CaughtBlockingCalls]:
    """Raise BlockingError on any blocking call on the event loop; fail on any the app caught."""
    caught = CaughtBlockingCalls()
    root = logging.getLogger()
    root.addHandler(caught)
    try:
        with blockbuster_ctx() as detector:
            allow_known_blocking(detector)
            yield caught
    finally:
        root.removeHandler(caught)
    if caught.calls:
        pytest.fail(
            "A blocking call ran on the event loop: " + "; ".join(caught.calls), pytrace=False
        )
