"""What each step asks a learner to build, read from its `learn.toml`."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# What a step's learner writes: the app (and a step's tests judge it), or the tests.
LEARNER_WRITES = ("app", "tests")


class LessonError(Exception):
    """A step's learn.toml is missing or malformed, or a step was named that does not exist."""


@dataclass(frozen=True)
class Task:
    """One thing the step asks for, judged by the tests that carry its marker."""

    id: str
    title: str
    summary: str
    hints: tuple[str, ...]


@dataclass(frozen=True)
class Expectation:
    """A name the step's code and tests import: the message for when it is missing."""

    module: str
    name: str | None
    shape: str
    task: str
    why: str = ""

    def message(self, step: Lesson) -> str:
        """Say it the way a reviewer would: step 03 expects `app/db.py` to define ..."""
        where = module_path(self.module)
        said = (
            f"step {step.number} expects `{where}` to define `{self.shape}`"
            if self.name
            else f"step {step.number} expects `{where}`"
        )
        return f"{said}: {self.why}" if self.why else said


@dataclass(frozen=True)
class RequiredFile:
    """A file outside app/ that the step needs (alembic.ini, migrations/env.py)."""

    path: str
    task: str
    why: str


@dataclass(frozen=True)
class Below:
    """The environment the step before's tests get when they run on this step's code."""

    env: dict[str, str]
    reason: str


@dataclass(frozen=True)
class Lesson:
    """A step as a learner meets it: its tasks, their hints, what its tests import."""

    directory: Path
    title: str
    tasks: tuple[Task, ...]
    expects: tuple[Expectation, ...] = ()
    files: tuple[RequiredFile, ...] = ()
    # Tests of the step before that this step changes on purpose: {node id: reason}.
    superseded: dict[str, str] = field(default_factory=dict)
    # How the step before's tests run on this step's code: settings this step
    # adds that those tests cannot know of (a rate limit they would hit), lifted
    # with environment variables, and why.
    below: Below | None = None
    # What the learner writes in this step: "app" (most steps), or "tests" (the
    # step whose layer is tests: its tasks are bugs the learner's tests must catch).
    learner_writes: str = "app"
    # In a step where the learner writes tests: the step's own tests that judge
    # them (paths in the step), which are no part of the learner's answer.
    judges: tuple[str, ...] = ()

    @property
    def writes_tests(self) -> bool:
        """Whether the learner writes tests in this step, and work/tests/ is theirs."""
        return self.learner_writes == "tests"

    @property
    def name(self) -> str:
        """`03_database`."""
        return self.directory.name

    @property
    def number(self) -> str:
        """`03`."""
        return self.name.split("_", 1)[0]

    @property
    def page(self) -> str:
        """The step's page, as a path in the repository."""
        return f"docs/steps/{self.name}.md"

    def task(self, task_id: str) -> Task:
        """The task with this id."""
        for task in self.tasks:
            if task.id == task_id:
                return task
        raise LessonError(f"step {self.number} has no task {task_id!r}.")


def module_path(module: str) -> str:
    """`app.db` -> `app/db.py`; a package (`app.routes`) is named by its directory."""
    parts = module.split(".")
    return "/".join(parts) + ("/" if parts[-1] == "routes" else ".py")


def _strings(value: Any, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise LessonError(f"{where} must be a list of strings.")
    return tuple(value)


def _text(table: dict[str, Any], key: str, where: str, default: str | None = None) -> str:
    value = table.get(key, default)
    if not isinstance(value, str) or not value:
        raise LessonError(f"{where} needs `{key}`, a non-empty string.")
    return value


def _below(raw: Any, where: str) -> Below | None:
    """`[below]`: `env`, the variables to set, and `reason`, why the step before needs them."""
    if raw is None:
        return None
    env = raw.get("env") if isinstance(raw, dict) else None
    if (
        not env
        or not isinstance(env, dict)
        or not all(isinstance(name, str) and isinstance(value, str) for name, value in env.items())
    ):
        raise LessonError(f"{where} [below] needs `env`, a table of variable names to strings.")
    return Below(env=dict(env), reason=_text(raw, "reason", f"{where} [below]"))


def load_lesson(directory: Path) -> Lesson:
    """Read one step's learn.toml."""
    path = directory / "learn.toml"
    if not path.is_file():
        raise LessonError(f"{directory.name} has no learn.toml: every step describes its tasks.")
    with path.open("rb") as file:
        data = tomllib.load(file)
    where = f"{directory.name}/learn.toml"
    tasks = tuple(
        Task(
            id=_text(raw, "id", f"{where} [[tasks]]"),
            title=_text(raw, "title", f"{where} task {raw.get('id')!r}"),
            summary=_text(raw, "summary", f"{where} task {raw.get('id')!r}"),
            hints=_strings(raw.get("hints", []), f"{where} task {raw.get('id')!r} hints"),
        )
        for raw in data.get("tasks", [])
    )
    if not tasks:
        raise LessonError(f"{where} lists no [[tasks]].")
    ids = [task.id for task in tasks]
    if len(set(ids)) != len(ids):
        raise LessonError(f"{where} repeats a task id: {ids}.")
    expects = tuple(
        Expectation(
            module=_text(raw, "module", f"{where} [[expects]]"),
            name=raw.get("name"),
            shape=raw.get("shape") or raw.get("name") or "",
            task=_text(raw, "task", f"{where} [[expects]] {raw.get('module')}"),
            why=raw.get("why", ""),
        )
        for raw in data.get("expects", [])
    )
    files = tuple(
        RequiredFile(
            path=_text(raw, "path", f"{where} [[files]]"),
            task=_text(raw, "task", f"{where} [[files]] {raw.get('path')}"),
            why=_text(raw, "why", f"{where} [[files]] {raw.get('path')}"),
        )
        for raw in data.get("files", [])
    )
    superseded = data.get("superseded", {})
    if not isinstance(superseded, dict) or not all(
        isinstance(reason, str) and reason for reason in superseded.values()
    ):
        raise LessonError(f"{where} [superseded] maps test ids to their reasons.")
    learner_writes = data.get("learner_writes", "app")
    if learner_writes not in LEARNER_WRITES:
        raise LessonError(f"{where} `learner_writes` is one of {', '.join(LEARNER_WRITES)}.")
    lesson = Lesson(
        directory=directory,
        learner_writes=learner_writes,
        judges=_strings(data.get("judges", []), f"{where} judges"),
        below=_below(data.get("below"), where),
        title=_text(data, "title", where),
        tasks=tasks,
        expects=expects,
        files=files,
        superseded=dict(superseded),
    )
    named: set[str] = {item.task for item in expects} | {item.task for item in files}
    for task_id in named:
        lesson.task(task_id)  # every expectation names one of the step's own tasks
    return lesson


def load_lessons(root: Path) -> list[Lesson]:
    """Every step's lesson, in order."""
    return [load_lesson(path.parent) for path in sorted(root.glob("steps/*/pyproject.toml"))]


def find_lesson(lessons: list[Lesson], wanted: str) -> Lesson:
    """The lesson named `03`, `3` or `03_database`."""
    for lesson in lessons:
        if wanted in {lesson.name, lesson.number} or (
            wanted.isdigit() and int(wanted) == int(lesson.number)
        ):
            return lesson
    names = ", ".join(lesson.number for lesson in lessons)
    raise LessonError(f"There is no step {wanted!r}: the steps are {names}.")


def previous(lessons: list[Lesson], lesson: Lesson) -> Lesson | None:
    """The step before this one (None for the first)."""
    index = lessons.index(lesson)
    return lessons[index - 1] if index else None


def owner_of(lessons: list[Lesson], task_id: str) -> tuple[Lesson, Task] | None:
    """The step that defines a task id, and the task."""
    for lesson in lessons:
        for task in lesson.tasks:
            if task.id == task_id:
                return lesson, task
    return None
