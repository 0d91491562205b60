"""Run a step's tests against a project (`work/`, or another step) and group the results by task."""

from __future__ import annotations

import ast
import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tools.learner.imports import expectation_for, explain
from tools.learner.lessons import Lesson, Task, owner_of

PLUGIN_DIR = Path(__file__).resolve().parent / "pytest_plugin"
# pytest plugins a later step brings: an environment shared with a later step
# has them, and a step that does not declare one must run without it.
LATER_PLUGINS = {"pytest-asyncio": "asyncio"}
# The line pytest prints for the exception that stopped a conftest from loading.
_ERROR_LINE = re.compile(r"^E\s+(?P<error>\w*(Error|Exception)\b.*)$", re.MULTILINE)


@dataclass
class TestResult:
    """One test's outcome, in the terms the plugin wrote it."""

    nodeid: str
    name: str
    outcome: str
    code: str = ""
    output: str = ""
    failure: dict[str, Any] | None = None

    @property
    def passed(self) -> bool:
        """Whether it passed."""
        return self.outcome == "passed"


@dataclass
class TaskResult:
    """A task with its tests and anything that stopped them from running."""

    lesson: Lesson
    task: Task
    tests: list[TestResult] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        """A task passes when it has tests, all of them pass, and nothing stopped any."""
        return bool(self.tests) and not self.problems and all(test.passed for test in self.tests)

    @property
    def failing(self) -> list[TestResult]:
        """Its tests that did not pass."""
        return [test for test in self.tests if not test.passed]


@dataclass
class Verdict:
    """What a check found: the step's own tasks, the earlier steps' tasks, and the raw run."""

    lesson: Lesson
    tasks: list[TaskResult]
    earlier: list[TaskResult]
    untasked: list[TestResult]
    blocking: list[str]
    output: str
    returncode: int

    @property
    def passed(self) -> bool:
        """Every task of this step and of the earlier ones passes."""
        return (
            not self.blocking
            and not self.untasked
            and all(task.passed for task in (*self.tasks, *self.earlier))
        )

    @property
    def first_failing(self) -> TaskResult | None:
        """The task to work on next: this step's first failing one, else an earlier one."""
        for task in (*self.tasks, *self.earlier):
            if not task.passed:
                return task
        return None

    def all_tests(self) -> list[TestResult]:
        """Every test, grouped by task in task order."""
        grouped = [test for task in (*self.tasks, *self.earlier) for test in task.tests]
        return grouped + self.untasked


def task_markers_in(path: Path) -> set[str]:
    """The task ids a test file names in `pytest.mark.task(...)`, read without importing it."""
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"))
    except (OSError, SyntaxError):
        return set()
    found = set()
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "task"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            found.add(node.args[0].value)
    return found


def newest_task(task_ids: Sequence[str], lessons: list[Lesson]) -> tuple[Lesson, Task] | None:
    """Of a test's task markers, the one of the latest step (a param's mark beats its module's)."""
    owned = [found for found in (owner_of(lessons, task_id) for task_id in task_ids) if found]
    if not owned:
        return None
    return max(owned, key=lambda pair: lessons.index(pair[0]))


def pytest_command(
    python: str,
    tests: Path,
    import_dir: Path,
    report: Path,
    *,
    tasks_only: Sequence[str] = (),
    extra: Sequence[str] = (),
    cache_dir: Path | None = None,
) -> list[str]:
    """The pytest command that runs a step's tests on another project's `app`."""
    step = tests.parent
    command = [
        python,
        "-P",  # not the working directory on sys.path: `app` must come from import_dir
        "-m",
        "pytest",
        "-c",
        str(step / "pyproject.toml"),
        "--rootdir",
        str(step),
        # Only import_dir: `app` from the project under test, `tests` from the step.
        # The step's own directory is not on the path: it has an `app` too.
        "-o",
        f"pythonpath={shlex.quote(str(import_dir))}",
        "-p",
        "workshop_tasks",
        "--tasks-report",
        str(report),
        "-q",
        "--no-header",
        "-rN",
        # The plugin keeps each failure for the report: pytest formatting them too is
        # most of the time a run of many failing tests takes.
        "--tb=no",
        # A test file that cannot be imported fails its own task; the others still run.
        "--continue-on-collection-errors",
    ]
    if cache_dir is None:
        command += ["-p", "no:cacheprovider"]
    else:
        command += ["-o", f"cache_dir={shlex.quote(str(cache_dir))}"]
    if tasks_only:
        command += ["--tasks-only", ",".join(tasks_only)]
    declared = (step / "pyproject.toml").read_text(encoding="utf-8")
    for distribution, plugin in LATER_PLUGINS.items():
        if f'"{distribution}' not in declared:
            command += ["-p", f"no:{plugin}"]
    return [*command, *extra, str(tests)]


def run_tests(
    lesson: Lesson,
    lessons: list[Lesson],
    project: Path,
    *,
    python: str = sys.executable,
    env: dict[str, str] | None = None,
    tasks_only: Sequence[str] = (),
    extra: Sequence[str] = (),
    cache_dir: Path | None = None,
) -> Verdict:
    """Run lesson's tests with `app` imported from project, and judge each task."""
    known = lessons[: lessons.index(lesson) + 1]
    with tempfile.TemporaryDirectory(prefix="workshop-check-") as scratch:
        import_dir = Path(scratch) / "import"
        import_dir.mkdir()
        # Links, not copies: the tests find the project from `app.__file__`, resolved.
        if (project / "app").is_dir():
            (import_dir / "app").symlink_to((project / "app").resolve(), target_is_directory=True)
        (import_dir / "tests").symlink_to(
            (lesson.directory / "tests").resolve(), target_is_directory=True
        )
        report = Path(scratch) / "report.json"
        command = pytest_command(
            python,
            lesson.directory / "tests",
            import_dir,
            report,
            tasks_only=tasks_only,
            extra=extra,
            cache_dir=cache_dir,
        )
        environment = {**os.environ, **(env or {})}
        environment["PYTHONPATH"] = os.pathsep.join(
            [str(PLUGIN_DIR), *filter(None, [environment.get("PYTHONPATH")])]
        )
        completed = subprocess.run(
            command,
            cwd=project if project.is_dir() else scratch,
            env=environment,
            capture_output=True,
            text=True,
            check=False,
        )
        data = json.loads(report.read_text(encoding="utf-8")) if report.is_file() else None
        if data is not None:
            # Name files where they really are: the links go with the scratch directory.
            _relink(data, {import_dir / "app": project / "app"})
    output = completed.stdout + completed.stderr
    return judge(lesson, known, project, data, output, completed.returncode, tasks_only)


def _relink(data: dict[str, Any], links: dict[Path, Path]) -> None:
    """Rewrite paths through the import links to the files they point at."""

    def real(path: str) -> str:
        for link, target in links.items():
            if path.startswith(f"{link}{os.sep}"):
                return str(target) + path[len(str(link)) :]
        return path

    for test in data["tests"]:
        for frame in (test["failure"] or {}).get("frames", []):
            frame["path"] = real(frame["path"])
    for error in data["collection_errors"]:
        error["path"] = real(error["path"])
        for frame in error.get("frames", []):
            frame["path"] = real(frame["path"])


def judge(
    lesson: Lesson,
    lessons: list[Lesson],
    project: Path,
    data: dict[str, Any] | None,
    output: str,
    returncode: int,
    tasks_only: Sequence[str] = (),
) -> Verdict:
    """Group a run's results by task, and word what stopped tests from running."""
    results: dict[tuple[str, str], TaskResult] = {}
    order: list[tuple[str, str]] = []

    def task_result(owner: Lesson, task: Task) -> TaskResult:
        key = (owner.name, task.id)
        if key not in results:
            results[key] = TaskResult(owner, task)
            order.append(key)
        return results[key]

    for task in lesson.tasks:
        if not tasks_only or task.id in tasks_only:
            task_result(lesson, task)
    untasked: list[TestResult] = []
    blocking: list[str] = []

    if data is None:
        # Nothing ran: most often a conftest that cannot import the learner's app.
        errors = _ERROR_LINE.findall(output)
        message = errors[-1][0] if errors else (output.strip().splitlines() or ["no output"])[-1]
        blocking.append(explain(message, lessons) or message)
        owner, expectation = expectation_for(message, lessons)
        if owner is not None and expectation is not None:
            task_result(owner, owner.task(expectation.task)).problems.append(blocking[-1])
        for result in results.values():
            if not result.problems:
                result.problems.append("Its tests could not run (see above).")
    else:
        for raw in data["tests"]:
            test = TestResult(
                nodeid=raw["nodeid"],
                name=raw["name"],
                outcome=raw["outcome"],
                code=raw.get("code", ""),
                output=raw.get("output", ""),
                failure=raw["failure"],
            )
            owned = newest_task(raw["tasks"], lessons)
            if owned is None:
                untasked.append(test)
                continue
            task_result(*owned).tests.append(test)
            if test.failure and (said := explain(test.failure["message"], lessons)):
                test.failure["explained"] = said
        for error in data["collection_errors"]:
            said = explain(error["message"], lessons)
            relative = error["nodeid"] or error["path"]
            problem = (
                said or f"{relative} could not be imported: {error['message'].splitlines()[-1]}"
            )
            affected = task_markers_in(Path(error["path"]))
            targets = [found for found in (owner_of(lessons, t) for t in affected) if found]
            if not targets:
                blocking.append(problem)
            for owner, task in targets:
                result = task_result(owner, task)
                if problem not in result.problems:
                    result.problems.append(problem)

    for owner in lessons:
        for required in owner.files:
            if not (project / required.path).exists() and (
                not tasks_only or required.task in tasks_only
            ):
                said = f"step {owner.number} expects `{required.path}`: {required.why}"
                if (owner.name, required.task) in results or owner is lesson:
                    task_result(owner, owner.task(required.task)).problems.insert(0, said)

    own = [results[key] for key in order if key[0] == lesson.name]
    own.sort(key=lambda result: lesson.tasks.index(result.task))
    earlier = [results[key] for key in order if key[0] != lesson.name]
    earlier.sort(
        key=lambda result: (lessons.index(result.lesson), result.lesson.tasks.index(result.task))
    )
    return Verdict(lesson, own, earlier, untasked, blocking, output, returncode)
