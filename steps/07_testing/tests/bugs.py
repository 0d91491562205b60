"""Plant one bug in a copy of the app and run one file of tests on it: do they catch it?

Step 07's layer is tests, so its tasks are bugs: each is a mutant, one line of
one module of `app/` changed the way a real change could break it. A file of
tests catches a mutant when it passes on the app as it is and fails (pytest's
exit code 1) on the app with the mutant planted. This is mutation testing
(docs/reference/mutation.md), one chosen mutant at a time.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from sqlalchemy.engine import make_url
from tests.conftest import PROJECT_DIR, database_url

# The repository's steps: each one's own session runs its tests.
STEPS_DIR = Path(__file__).resolve().parents[2]
# What a run of the tests needs of the project: its code, migrations and config.
PROJECT_PARTS = ("app", "migrations", "alembic.ini", "pyproject.toml", "tests")
CACHES = ("__pycache__", ".pytest_cache", ".hypothesis", "*.pyc")
# pytest's exit codes: 1 is "tests failed"; the others mean nothing was judged.
TESTS_FAILED = 1
EXIT_MEANINGS = {
    0: "every test passed",
    2: "the run was interrupted: most often a test file that cannot be imported",
    3: "pytest itself failed",
    4: "pytest was called wrongly: most often the file does not exist",
    5: "no test was collected",
}
OUTPUT_LINES = 30
# A file of tests that takes longer than this on one mutant is stuck, not slow.
TIMEOUT_SECONDS = 600


@dataclass(frozen=True)
class Mutant:
    """A one-line bug: `old` (found exactly once in `module`) becomes `new`."""

    name: str
    tests: str  # the file of tests that must catch it, relative to the project
    module: str  # relative to the project: app/db.py
    old: str
    new: str
    why: str  # how a real change could make this bug
    catch: str  # the behaviour a test must check to catch it (never the fix)


@dataclass(frozen=True)
class Run:
    """One run of a file of tests: pytest's exit code and the end of its output."""

    returncode: int
    output: str

    def said(self) -> str:
        """The exit code with its meaning, then the output's last lines."""
        meaning = EXIT_MEANINGS.get(self.returncode, "some tests failed")
        return f"exit code {self.returncode} ({meaning}):\n{self.output}"


def plant(mutant: Mutant, project: Path) -> None:
    """Apply the mutant to the project's copy of its module."""
    module = project / mutant.module
    text = module.read_text(encoding="utf-8")
    found = text.count(mutant.old)
    # The bug must land where it was meant to: in an app changed since, it cannot.
    assert found == 1, (
        f"{mutant.module} has {found} copies of the line this task changes, not one: "
        f"{mutant.old!r}. The bugs are planted in the step's own app/: "
        "`./workshop -s reset` puts it back (your tests are backed up first)."
    )
    module.write_text(text.replace(mutant.old, mutant.new), encoding="utf-8")


def bugs_database_url() -> str:
    """A database of the runs' own, beside the test run's: they never migrate or clean it."""
    url = make_url(database_url())
    return url.set(database=f"{url.database}_bugs").render_as_string(hide_password=False)


def copy_project(source: Path, target: Path) -> None:
    """Copy what the tests need of the project (caches left out)."""
    for part in PROJECT_PARTS:
        if (source / part).is_dir():
            shutil.copytree(source / part, target / part, ignore=shutil.ignore_patterns(*CACHES))
        elif (source / part).is_file():
            shutil.copy2(source / part, target / part)


def pytest_command(project: Path, tests: str) -> list[str]:
    """pytest on one file of the project, `app` and `tests` imported from the project alone."""
    return [
        sys.executable,
        "-P",  # not the working directory on sys.path, only the project
        "-m",
        "pytest",
        "-c",
        str(project / "pyproject.toml"),
        "--rootdir",
        str(project),
        "-o",
        f"pythonpath={shlex.quote(str(project))}",
        "-p",
        "no:cacheprovider",
        "-q",
        "-x",  # one failing test is enough to know the bug was caught
        "--no-header",
        str(project / tests),
    ]


@cache
def run_tests(tests: str, mutant: Mutant | None = None) -> Run:
    """Run a file of the project's tests on a copy of the project, with the mutant planted."""
    with tempfile.TemporaryDirectory(prefix="workshop-bug-") as scratch:
        project = Path(scratch) / "project"
        project.mkdir()
        copy_project(PROJECT_DIR, project)
        if mutant is not None:
            plant(mutant, project)
        environment = {
            name: value
            for name, value in os.environ.items()
            # A coverage run measures its subprocesses: not these, whose app/ is a copy.
            if not name.startswith(("COVERAGE_", "COV_CORE_"))
        }
        environment["DATABASE_URL"] = bugs_database_url()
        completed = subprocess.run(
            pytest_command(project, tests),
            cwd=project,
            env=environment,
            capture_output=True,
            text=True,
            check=False,
            timeout=TIMEOUT_SECONDS,
        )
    lines = (completed.stdout + completed.stderr).replace(scratch, "<copy>").splitlines()
    return Run(completed.returncode, "\n".join(lines[-OUTPUT_LINES:]))


def assert_caught(mutant: Mutant) -> None:
    """Fail, saying what to test, unless the mutant's file of tests catches it."""
    assert (PROJECT_DIR / mutant.tests).is_file(), (
        f"There is no {mutant.tests} yet: write it, tests that pass on the app as it is "
        f"and would catch this bug in {mutant.module}: {mutant.why}"
    )
    # On a step of this repository (this one, the one before, the one after)
    # that step's own session has that file pass already; on anyone else's
    # (a learner's work/) it must be shown.
    pristine = Run(0, "") if PROJECT_DIR.parent == STEPS_DIR else run_tests(mutant.tests)
    assert pristine.returncode == 0, (
        f"{mutant.tests} must pass on the app as it is before it can catch a bug; "
        f"it ended with {pristine.said()}"
    )
    mutated = run_tests(mutant.tests, mutant)
    assert mutated.returncode != 0, (
        f"{mutant.tests} passes with this bug planted in {mutant.module}: {mutant.why} "
        f"A test that {mutant.catch} would fail on it."
    )
    assert mutated.returncode == TESTS_FAILED, (
        f"{mutant.tests} did not fail its tests with the bug planted in {mutant.module}: "
        f"it ended with {mutated.said()}"
    )


# Each task of learn.toml is one of these bugs: the tests step 07 adds catch every one.
BUGS = {
    "catch-races": Mutant(
        name="repeatable-read-without-retries",
        tests="tests/test_concurrency.py",
        module="app/db.py",
        old="pool_pre_ping=True,",
        new='pool_pre_ping=True, isolation_level="REPEATABLE READ",',
        why=(
            "every transaction now runs at REPEATABLE READ, a change made 'for safety', and "
            "nothing retries the serialization failures it brings: of two requests that "
            "update one row at once, the second gets a 500. One request at a time, nothing shows."
        ),
        catch=(
            "sends two refreshes with one refresh token at once (held at the same row lock, "
            "released together) and expects exactly one new pair and one 401"
        ),
    ),
    "catch-connection-cuts": Mutant(
        name="cut-connection-is-a-bug",
        tests="tests/test_database_connection_cuts.py",
        module="app/errors.py",
        old="return error.connection_invalidated or sqlstate in _GAVE_UP_SQLSTATES",
        new="return sqlstate in _GAVE_UP_SQLSTATES",
        why=(
            "only a statement PostgreSQL gave up on counts as an outage now; a connection "
            "cut in the middle of a statement or a COMMIT arrives as a plain DBAPIError and "
            "is answered as a bug, a 500 the client must not retry."
        ),
        catch=(
            "terminates the request's backend (pg_terminate_backend) while the request waits "
            "for a row lock, and expects a 503 problem with Retry-After"
        ),
    ),
    "catch-properties": Mutant(
        name="local-limit-off-by-one",
        tests="tests/test_properties.py",
        module="app/ratelimit.py",
        old="        if now < allow_at:\n",
        new="        if now <= allow_at:\n",
        why=(
            "the in-memory limiter (the login limit's fallback while Redis is down) compares "
            "with <= where the Lua script compares with <: a client is refused at the very "
            "microsecond it was told to come back, and a limit of 1 refuses its first request."
        ),
        catch=(
            "drives the in-memory limiter on a clock of its own, for any limit and period, "
            "and checks a refused client is let in exactly when its retry_after has passed"
        ),
    ),
    "catch-fuzz": Mutant(
        name="cursor-errors-narrowed",
        tests="tests/test_schema_fuzz.py",
        module="app/repository.py",
        old="(binascii.Error, UnicodeDecodeError, ValueError, TypeError, OverflowError) as exc",
        new="(binascii.Error, UnicodeDecodeError, TypeError, OverflowError) as exc",
        why=(
            "reading a cursor refuses only the errors its author thought of (bad base64, bad "
            "UTF-8); text that is no JSON, or no timestamp, raises ValueError, which now "
            "escapes: any cursor the service never issued, even an empty one, is a 500."
        ),
        catch=(
            "generates requests from the OpenAPI schema for every operation, as a user who "
            "may call it (an admin lists users), and fails on any 5xx"
        ),
    ),
}
