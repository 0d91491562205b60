"""Word a check's verdict for the learner, and write it in exercism's results.json shape."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tools.learner.judge import TaskResult, TestResult, Verdict

PASS, FAIL = "✓", "✗"
MAX_FRAMES = 6
MAX_MESSAGE_LINES = 10
# exercism's test-runner interface, version 3: results.json with task ids.
RESULTS_VERSION = 3
MAX_OUTPUT_CHARS = 500


def shown_path(path: str, root: Path) -> str:
    """A path relative to the repository root where it lies inside it."""
    try:
        return str(Path(path).resolve().relative_to(root))
    except ValueError:
        return path


def trimmed_frames(test: TestResult, verdict: Verdict, project: Path, root: Path) -> list[str]:
    """The failure's frames in the learner's files and the step's tests; the libraries left out."""
    if not test.failure:
        return []
    tests_dir = (verdict.lesson.directory / "tests").resolve()
    ours = project.resolve()
    kept = []
    for frame in test.failure["frames"]:
        where = Path(frame["path"]).resolve()
        if where.is_relative_to(ours) or where.is_relative_to(tests_dir):
            place = f"{shown_path(frame['path'], root)}:{frame['line']} in {frame['name']}"
            kept.append(f"{place}\n        {frame['code']}" if frame["code"] else place)
    if len(kept) > MAX_FRAMES:
        kept = [kept[0], "...", *kept[-(MAX_FRAMES - 2) :]]
    return kept


def failure_message(test: TestResult) -> str:
    """The exception's first lines (pytest's assertion message included)."""
    if not test.failure:
        return f"{test.outcome}"
    lines = test.failure["message"].splitlines()
    if len(lines) > MAX_MESSAGE_LINES:
        lines = [*lines[:MAX_MESSAGE_LINES], f"... ({len(lines) - MAX_MESSAGE_LINES} more lines)"]
    return "\n".join(lines)


def _cannot_set_up(test: TestResult) -> bool:
    return test.outcome == "error" and (test.failure or {}).get("when") == "setup"


def task_line(number: int | None, result: TaskResult) -> str:
    """`✓ 1. Title (12 tests)` or `✗ 2. Title (3 of 5 fail)`."""
    mark = PASS if result.passed else FAIL
    label = f"{number}. " if number is not None else f"step {result.lesson.number}: "
    total = len(result.tests)
    if result.passed:
        count = f"{total} test{'s' * (total != 1)}"
    elif total and all(_cannot_set_up(test) for test in result.failing):
        # A fixture that needs this step's work (a migrated database) stops them.
        count = f"{len(result.failing)} of {total} cannot set up yet"
    elif total:
        count = f"{len(result.failing)} of {total} fail"
    else:
        count = "could not run"
    return f"  {mark} {label}{result.task.title} ({count})"


def render(verdict: Verdict, project: Path, root: Path, hint: str | None = None) -> str:
    """The check's report: every task's line, then the first failing task in detail."""
    lesson = verdict.lesson
    out = [
        f"Step {lesson.number}: {lesson.title}, "
        f"{shown_path(str(lesson.directory / 'tests'), root)} on {shown_path(str(project), root)}/",
        "",
    ]
    out += [task_line(index, result) for index, result in enumerate(verdict.tasks, 1)]
    if verdict.earlier:
        held = [result for result in verdict.earlier if result.passed]
        tests = sum(len(result.tests) for result in held)
        out.append(
            f"  Earlier steps: {len(held)} of {len(verdict.earlier)} tasks hold ({tests} tests)"
        )
        out += [task_line(None, result) for result in verdict.earlier if not result.passed]
    if verdict.untasked:
        out.append(
            f"  {FAIL} {len(verdict.untasked)} tests carry no task marker (tell the authors)"
        )
    for problem in verdict.blocking:
        out += ["", f"Nothing could run: {problem}"]
    failing = verdict.first_failing
    if failing is None:
        if verdict.passed:
            out += ["", f"{PASS} Step {lesson.number} passes: every task is done."]
        return "\n".join(out) + "\n"
    number = verdict.tasks.index(failing) + 1 if failing in verdict.tasks else None
    heading = f"task {number}" if number else f"step {failing.lesson.number}'s task"
    out += ["", f"First failing: {heading}, {failing.task.title}", f"  {failing.task.summary}"]
    out += [f"  - {problem}" for problem in failing.problems]
    if failing.failing:
        test = failing.failing[0]
        when = test.failure["when"] if test.failure else ""
        kind = f" (error in {when})" if test.outcome == "error" and when else ""
        out += ["", f"  {test.nodeid}{kind}"]
        explained = test.failure.get("explained") if test.failure else None
        if explained:
            out.append(f"    {explained}")
        out += [f"    {frame}" for frame in trimmed_frames(test, verdict, project, root)]
        out += ["    " + line for line in failure_message(test).splitlines()]
        others = len(failing.failing) - 1
        if others:
            out.append(f"  ... and {others} more failing test{'s' * (others != 1)} in this task.")
    if hint:
        out += ["", f"  Hint: {hint}"]
    return "\n".join(out) + "\n"


def _status(test: TestResult) -> str:
    return {"passed": "pass", "failed": "fail"}.get(test.outcome, "error")


def results_json(verdict: Verdict, project: Path, root: Path) -> dict[str, Any]:
    """The verdict in exercism's test-runner results.json (version 3: tests carry task ids)."""
    tests: list[dict[str, Any]] = []
    for result in (*verdict.tasks, *verdict.earlier):
        task_id = verdict.tasks.index(result) + 1 if result in verdict.tasks else None
        for test in result.tests:
            entry: dict[str, Any] = {
                "name": f"{result.task.title} > {test.name}",
                "status": _status(test),
                "test_code": test.code,
            }
            if test.outcome != "passed":
                frames = trimmed_frames(test, verdict, project, root)
                entry["message"] = "\n".join([*frames, failure_message(test)])
            if test.output:
                entry["output"] = test.output[:MAX_OUTPUT_CHARS]
            if task_id is not None:
                entry["task_id"] = task_id
            tests.append(entry)
    results: dict[str, Any] = {"version": RESULTS_VERSION}
    problems = [*verdict.blocking, *(p for r in verdict.tasks for p in r.problems)]
    if verdict.blocking or (problems and not tests):
        results["status"] = "error"
        results["message"] = "\n".join(problems)
    else:
        results["status"] = "pass" if verdict.passed else "fail"
        if problems:
            results["message"] = "\n".join(problems)
    results["tests"] = tests
    return results
