"""The exercises' tests use the step's own fixtures: here, only the check for blocking calls."""

from tests.conftest import no_blocking_calls

__all__ = ["no_blocking_calls"]
