"""The step's tasks: each file of tests must catch a bug planted in the app (tests/bugs.py)."""

import pytest
from tests.bugs import BUGS, assert_caught

# Plain functions, not async: each waits for pytest runs in subprocesses, and
# must not do so on an event loop.


@pytest.mark.task("catch-races")
def test_the_concurrency_tests_catch_a_race() -> None:
    assert_caught(BUGS["catch-races"])


@pytest.mark.task("catch-connection-cuts")
def test_the_connection_cut_tests_catch_a_cut_answered_as_a_bug() -> None:
    assert_caught(BUGS["catch-connection-cuts"])


@pytest.mark.task("catch-properties")
def test_the_property_tests_catch_an_off_by_one() -> None:
    assert_caught(BUGS["catch-properties"])


@pytest.mark.task("catch-fuzz")
def test_the_schema_fuzz_catches_an_input_that_makes_a_500() -> None:
    assert_caught(BUGS["catch-fuzz"])
