"""The exercises' tests use the step's own fixtures, the check for blocking calls included."""

from tests.conftest import app, client, no_blocking_calls, settings

__all__ = ["app", "client", "no_blocking_calls", "settings"]
