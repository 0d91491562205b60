"""The exercises' tests start from the clean environment the step's own tests use."""

from tests.test_config import clean_environment

__all__ = ["clean_environment"]
