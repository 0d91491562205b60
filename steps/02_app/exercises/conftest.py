"""The exercises' tests use the step's own fixtures: settings, app and client."""

from tests.conftest import app, client, settings

__all__ = ["app", "client", "settings"]
