"""Exercise: tests/test_cursor_edges.py catches a cursor that overflows into a 500."""

from tests.bugs import Mutant, assert_caught

OVERFLOW_UNCAUGHT = Mutant(
    name="cursor-overflow-uncaught",
    tests="tests/test_cursor_edges.py",
    module="app/repository.py",
    old="(binascii.Error, UnicodeDecodeError, ValueError, TypeError, OverflowError) as exc",
    new="(binascii.Error, UnicodeDecodeError, ValueError, TypeError) as exc",
    why=(
        "reading a cursor no longer refuses a timestamp that leaves years 1-9999 when it is "
        "moved to UTC: such a cursor, which anyone can write, is a 500 instead of a 422."
    ),
    catch=(
        "lists users (as an admin) with a cursor of the service's own shape whose timestamp "
        "lies at the edge of the calendar in a far-off time zone, and expects a 422 problem"
    ),
)


def test_your_cursor_tests_catch_a_cursor_that_overflows() -> None:
    assert_caught(OVERFLOW_UNCAUGHT)
