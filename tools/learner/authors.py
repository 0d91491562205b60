"""The authors' check: a step's tests judge a learner fairly, and no step breaks the one below.

For step N: its tests carry task markers of known tasks and every task has tests;
every task of N fails on step N-1's code (so a learner who did nothing cannot
pass, and each task tests what the step adds); step N-1's tests pass on step
N's code, except the ones N's learn.toml lists as superseded, with the reason.
Those run with the environment N's `[below]` table gives (a limit N adds,
lifted), since N-1's tests cannot know of settings N adds.
That step N's tests pass on step N is the step's own session, `step(NN_name)`.

Most of N-1's test files are in N unchanged. Where the step session has passed
on N's files as they are (its record, tools/step_runs.py), those files have
already passed on N's code, judged by N's fixtures as a learner at step N is:
they are not run a second time. The files N changed always run, with N-1's
fixtures, and so does everything when there is no such record.
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from tools import step_runs
from tools.learner.judge import Verdict, run_tests
from tools.learner.lessons import Lesson, find_lesson, load_lessons, previous


def unique_task_ids(lessons: list[Lesson]) -> list[str]:
    """A task id names one task in the whole workshop: later steps' tests keep earlier markers."""
    seen: dict[str, str] = {}
    problems = []
    for lesson in lessons:
        for task in lesson.tasks:
            if task.id in seen:
                problems.append(
                    f"task id {task.id!r} is in both {seen[task.id]} and {lesson.name}."
                )
            seen[task.id] = lesson.name
    return problems


def collected(verdict: Verdict) -> list[str]:
    """What a collection of a step's own tests on its own code must show."""
    problems = [f"a test file cannot be collected: {problem}" for problem in verdict.blocking]
    for result in verdict.tasks:
        problems += [f"task {result.task.id!r}: {problem}" for problem in result.problems]
        if not result.tests:
            problems.append(f"task {result.task.id!r} has no test marked with it.")
    problems += [
        f"{test.nodeid} has no task marker of a known task: mark it "
        '`@pytest.mark.task("<id>")` with a task of this step or an earlier one.'
        for test in verdict.untasked
    ]
    return problems


def tasks_fail_on_the_step_before(verdict: Verdict, before: str) -> tuple[list[str], list[str]]:
    """(what held, what did not) for every task of the step, run on the step before's code."""
    held, problems = [], []
    for result in verdict.tasks:
        failing = len(result.failing) + (1 if result.problems and not result.tests else 0)
        if result.passed:
            problems.append(
                f"task {result.task.id!r} ({result.task.title}) passes on {before}'s code: "
                "its tests do not test what the step adds."
            )
        else:
            held.append(f"task {result.task.id!r} fails on {before} ({failing} failing)")
    return held, problems


def earlier_tests_hold(verdict: Verdict, lesson: Lesson) -> tuple[int, list[str]]:
    """(how many passed, problems) for the step before's tests run on this step's code."""
    tests = verdict.all_tests()
    problems = [f"the step before's tests could not run: {problem}" for problem in verdict.blocking]
    passed = 0
    seen = set()
    for test in tests:
        seen.add(test.nodeid)
        reason = lesson.superseded.get(test.nodeid)
        if test.passed:
            passed += 1
            if reason:
                problems.append(
                    f"{test.nodeid} is listed as superseded in {lesson.name}/learn.toml "
                    "but passes: take it off the list."
                )
        elif not reason:
            message = (test.failure or {}).get("message", test.outcome).splitlines()[:1]
            problems.append(
                f"{test.nodeid} fails on {lesson.name}'s code ({' '.join(message)}): fix the "
                f"step, or list it under [superseded] in {lesson.name}/learn.toml with the reason."
            )
    problems += [
        f"[superseded] names {nodeid}, which the step before does not have."
        for nodeid in lesson.superseded
        if nodeid not in seen
    ]
    return passed, problems


def unchanged_test_files(before: Lesson, lesson: Lesson) -> list[Path]:
    """The step before's test files that this step has byte for byte (and supersedes none of)."""
    tests = before.directory / "tests"
    unchanged = []
    for path in sorted(tests.rglob("test_*.py")):
        relative = path.relative_to(before.directory)
        twin = lesson.directory / relative
        superseding = any(node.startswith(f"{relative.as_posix()}::") for node in lesson.superseded)
        if twin.is_file() and twin.read_bytes() == path.read_bytes() and not superseding:
            unchanged.append(path)
    return unchanged


def check_step(
    root: Path,
    name: str,
    *,
    python: str = sys.executable,
    env: dict[str, str] | None = None,
    out: Callable[[str], None] = print,
) -> list[str]:
    """Check one step; print what holds and return the problems (none: it passes)."""
    lessons = load_lessons(root)
    lesson = find_lesson(lessons, name)
    before = previous(lessons, lesson)
    problems = unique_task_ids(lessons)

    own = run_tests(lesson, lessons, lesson.directory, python=python, env=env, extra=["--co"])
    found = collected(own)
    problems += found
    if not found:
        out(
            f"✓ {len(own.all_tests())} tests, each in a task; every task of {lesson.name} has tests"
        )

    with tempfile.TemporaryDirectory(prefix="workshop-empty-step-") as empty:
        # Before step 01 there is nothing: an empty project, as `start 01` gives.
        project = before.directory if before else Path(empty)
        label = before.name if before else "an empty workspace"
        tasks = [task.id for task in lesson.tasks]
        on_before = run_tests(lesson, lessons, project, python=python, env=env, tasks_only=tasks)
    held, failed = tasks_fail_on_the_step_before(on_before, label)
    problems += failed
    for line in held:
        out(f"✓ {line}")

    if before is not None:
        below = lesson.below.env if lesson.below else {}
        # Trusted only from the step session's record of these very files.
        trusted = (
            unchanged_test_files(before, lesson) if step_runs.has_passed(lesson.name, root) else []
        )
        earlier = run_tests(
            before,
            lessons,
            lesson.directory,
            python=python,
            env={**(env or {}), **below},
            extra=[f"--ignore={path}" for path in trusted],
        )
        passed, broken = earlier_tests_hold(earlier, lesson)
        problems += broken
        out(
            f"✓ {passed} of {before.name}'s tests pass on {lesson.name}'s code"
            + (f" ({len(lesson.superseded)} superseded)" if lesson.superseded else "")
        )
        if trusted:
            out(
                f"  and {len(trusted)} test files {lesson.name} has unchanged passed in its own "
                f"session, `step({lesson.name})`, on these files: not run again"
            )
        if lesson.below:
            settings = ", ".join(f"{name}={value}" for name, value in lesson.below.env.items())
            out(f"  with {settings}: {lesson.below.reason}")
    for problem in problems:
        out(f"✗ {problem}")
    return problems


if __name__ == "__main__":
    step_name = sys.argv[1]
    found_problems = check_step(
        Path(__file__).resolve().parents[2], step_name, env=dict(os.environ)
    )
    sys.exit(1 if found_problems else 0)
