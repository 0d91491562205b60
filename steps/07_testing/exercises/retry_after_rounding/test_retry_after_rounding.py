"""Exercise: tests/test_retry_after.py catches a Retry-After rounded to the nearest second."""

from tests.bugs import Mutant, assert_caught

ROUNDED = Mutant(
    name="retry-after-rounded",
    tests="tests/test_retry_after.py",
    module="app/ratelimit.py",
    old="return max(1, math.ceil(self.retry_after))",
    new="return max(1, round(self.retry_after))",
    why=(
        "Retry-After is the wait rounded to the nearest second, not up: a client refused "
        "for 1.4 s is told to come back after 1 s, and is refused again."
    ),
    catch=(
        "checks, for any wait a refusal can carry, that Retry-After is whole seconds, "
        "at least 1 and never shorter than the wait itself"
    ),
)


def test_your_retry_after_tests_catch_a_wait_rounded_to_the_nearest_second() -> None:
    assert_caught(ROUNDED)
