"""`./workshop -s start|check|hint|watch|progress|solution|reset|skip`: the learner's commands."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tools.learner import lessons as lesson_files
from tools.learner import state as state_file
from tools.learner import workspace
from tools.learner.judge import Verdict, run_tests
from tools.learner.lessons import Lesson, LessonError
from tools.learner.report import render, results_json

# A hint comes by itself once a learner has failed this many checks of a step.
AUTO_HINT_AFTER = 2


@dataclass
class Workshop:
    """Where everything lives, and how to run a step's tests (interpreter and servers)."""

    root: Path
    python: str = sys.executable
    env: dict[str, str] = field(default_factory=dict)
    out: Callable[[str], None] = print

    @property
    def work(self) -> Path:
        """The learner's workspace."""
        return self.root / "work"

    @property
    def state_path(self) -> Path:
        """The progress file."""
        return self.root / ".workshop" / "learner.json"

    @property
    def backups(self) -> Path:
        """Where reset, skip and start --force put the workspace they replace."""
        return self.root / ".workshop" / "backups"

    def lessons(self) -> list[Lesson]:
        """Every step's lesson."""
        return lesson_files.load_lessons(self.root)


class RefusedError(Exception):
    """The command cannot do what was asked; the message says what to type instead."""


def current_lesson(shop: Workshop, state: state_file.State, wanted: str | None = None) -> Lesson:
    """The step named, or the current one."""
    lessons = shop.lessons()
    if wanted:
        lesson = lesson_files.find_lesson(lessons, wanted)
        if state.current and lesson.name != state.current:
            raise RefusedError(
                f"You are on step {state.current[:2]}: `./workshop -s start -- {lesson.number}` "
                f"moves to step {lesson.number}."
            )
        if not state.current:
            raise RefusedError(f"Start it first: `./workshop -s start -- {lesson.number}`.")
        return lesson
    if not state.current:
        raise RefusedError("No step started yet: `./workshop -s start -- 01` starts the first one.")
    return lesson_files.find_lesson(lessons, state.current)


def step_to_check(root: Path, args: Sequence[str]) -> Path:
    """The directory of the step a check (or watch) will run: what nox installs for."""
    shop = Workshop(root)
    state = state_file.load(shop.state_path)
    # The same parsing as the command itself: `--json results.json` names no step.
    wanted = parser().parse_args(["check", *args]).step
    return current_lesson(shop, state, wanted).directory


def describe(shop: Workshop, lesson: Lesson) -> None:
    """Print what a step asks for, and where its page is."""
    yours = "Your tests are in work/tests/" if lesson.writes_tests else "Your code is in work/"
    shop.out(f"Step {lesson.number}: {lesson.title}. {yours}; it asks for:\n")
    for index, task in enumerate(lesson.tasks, 1):
        shop.out(f"  {index}. {task.title}\n     {task.summary}")
    shop.out(
        f"\nThe page: {lesson.page} (or `./workshop -s docs -- serve` and "
        f"http://127.0.0.1:8001/steps/{lesson.name}/).\n"
        "`./workshop -s check` judges your work/ with the step's tests; "
        "`./workshop -s watch` re-checks on every save."
    )


def start(shop: Workshop, wanted: str, *, force: bool = False, fresh: bool = False) -> int:
    """Put step N-1's snapshot in work/ (or keep the learner's own code from step N-1)."""
    lessons = shop.lessons()
    lesson = lesson_files.find_lesson(lessons, wanted)
    before = lesson_files.previous(lessons, lesson)
    state = state_file.load(shop.state_path)
    done = before is not None and state.steps.get(before.name, state_file.StepRecord()).status in {
        "passed",
        "skipped",
    }
    carry = not fresh and before is not None and state.current == before.name and done
    if carry and lesson.writes_tests:
        assert before is not None
        # The bugs the tasks plant are lines of the step before's own app: in the
        # learner's own app they would have nowhere to land. Theirs is backed up.
        shop.out(
            f"Step {lesson.number} is about tests: work/ gets step {before.number}'s own code, "
            "in which its tasks plant bugs for your tests to catch."
        )
        carry, force = False, True
    if carry:
        assert before is not None
        shop.out(
            f"Carrying your step {before.number} code in work/ forward to step {lesson.number}."
        )
    else:
        baseline = state.steps[state.current].baseline if state.current in state.steps else None
        has_files = bool(workspace.workspace_files(shop.work))
        changed = workspace.changed_files(shop.work, baseline) if has_files else []
        if changed and not force:
            listed = ", ".join(changed[:5]) + (", ..." if len(changed) > 5 else "")
            raise RefusedError(
                f"work/ has changes of yours ({listed}): `./workshop -s start -- {lesson.number} "
                "--force` backs them up under .workshop/backups/ and starts over."
            )
        if changed:
            saved = workspace.back_up(shop.work, shop.backups, f"before-start-{lesson.name}")
            shop.out(f"Backed up work/ to {saved.relative_to(shop.root) if saved else 'nowhere'}.")
        first = lessons[0].directory / "pyproject.toml"
        workspace.copy_snapshot(
            before.directory if before else None,
            shop.work,
            first_pyproject=first,
            # The learner writes tests: the step before's are where they start from.
            with_tests=lesson.writes_tests,
            leave_out=before.judges if before else (),
        )
        source = f"steps/{before.name}" if before else "nothing (step 01 starts empty)"
        if lesson.writes_tests:
            source += ", its tests included"
        shop.out(f"work/ now holds {source}.")
    record = state.record(lesson.name)
    passed_before = record.status == "passed"
    state.steps[lesson.name] = state_file.StepRecord(
        status="passed" if passed_before else "started", baseline=workspace.manifest(shop.work)
    )
    state.current = lesson.name
    state_file.save(shop.state_path, state)
    shop.out("")
    describe(shop, lesson)
    return 0


def check(
    shop: Workshop,
    wanted: str | None = None,
    *,
    json_path: Path | None = None,
    failed_first: bool = False,
) -> int:
    """Run the current step's tests on work/, report by task, and keep the progress."""
    state = state_file.load(shop.state_path)
    lesson = current_lesson(shop, state, wanted)
    verdict = judge_work(shop, lesson, failed_first=failed_first)
    record = state.record(lesson.name)
    record.checks += 1
    record.tasks = {
        result.task.id: "passed" if result.passed else "failed" for result in verdict.tasks
    }
    failing = verdict.first_failing
    record.first_failing = failing.task.id if failing and failing.lesson is lesson else None
    hint = None
    if verdict.passed:
        record.status = "passed"
    else:
        record.failed_checks += 1
        task = failing.task if failing else None
        if (
            task
            and task.hints
            and record.failed_checks >= AUTO_HINT_AFTER
            and not record.hints.get(task.id)
        ):
            record.hints[task.id] = 1
            hint = f"(1 of {len(task.hints)}, after {record.failed_checks} checks) {task.hints[0]}"
    state_file.save(shop.state_path, state)
    shop.out(render(verdict, shop.work, shop.root, hint=hint).rstrip("\n"))
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        results = results_json(verdict, shop.work, shop.root)
        json_path.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
        shop.out(f"Wrote {json_path}.")
    if verdict.passed:
        lessons = shop.lessons()
        following = lessons.index(lesson) + 1
        if following < len(lessons):
            shop.out(
                f"Next: `./workshop -s start -- {lessons[following].number}` carries your "
                "work/ forward into the next step."
            )
        else:
            shop.out("That was the last step: final/ is the service with everything in it.")
        return 0
    shop.out(
        "\n`./workshop -s hint` gives a hint for this task; `./workshop -s watch` re-checks on "
        "every save."
    )
    return 1


def judge_work(shop: Workshop, lesson: Lesson, *, failed_first: bool = False) -> Verdict:
    """The step's tests on work/."""
    cache = shop.root / ".workshop" / "learner" / "pytest-cache" / lesson.name
    return run_tests(
        lesson,
        shop.lessons(),
        shop.work,
        python=shop.python,
        env=shop.env,
        extra=["--ff"] if failed_first else [],
        cache_dir=cache,
    )


def hint(shop: Workshop) -> int:
    """The next hint for the task that failed last (the step's first task before any check)."""
    state = state_file.load(shop.state_path)
    lesson = current_lesson(shop, state)
    record = state.record(lesson.name)
    task = lesson.task(record.first_failing) if record.first_failing else None
    if task is None:
        if record.status == "passed":
            shop.out(f"Step {lesson.number} passes: no hint needed.")
            return 0
        task = next(
            (t for t in lesson.tasks if record.tasks.get(t.id) != "passed"), lesson.tasks[0]
        )
    shown = record.hints.get(task.id, 0)
    number = lesson.tasks.index(task) + 1
    if shown >= len(task.hints):
        shop.out(
            f"No more hints for task {number} ({task.title}): `./workshop -s solution` "
            f"shows step {lesson.number}'s own code."
        )
        return 0
    record.hints[task.id] = shown + 1
    state_file.save(shop.state_path, state)
    shop.out(f"Hint {shown + 1} of {len(task.hints)} for task {number}, {task.title}:\n")
    shop.out(f"  {task.hints[shown]}")
    return 0


def progress(shop: Workshop) -> int:
    """Which steps passed, which were skipped, and the current step's tasks."""
    state = state_file.load(shop.state_path)
    marks = {"passed": "✓ passed", "skipped": "↷ skipped", "started": "… started"}
    for lesson in shop.lessons():
        record = state.steps.get(lesson.name)
        status = marks[record.status] if record else "  not started"
        here = "  <- you are here" if lesson.name == state.current else ""
        shop.out(f"  {status:<13} step {lesson.number}: {lesson.title}{here}")
        if record and lesson.name == state.current and record.status != "skipped":
            for index, task in enumerate(lesson.tasks, 1):
                mark = {"passed": "✓", "failed": "✗"}.get(record.tasks.get(task.id, ""), "·")
                shop.out(f"                  {mark} {index}. {task.title}")
            shop.out(f"                  (checks so far: {record.checks})")
    if not state.current:
        shop.out("\nNo step started yet: `./workshop -s start -- 01`.")
    return 0


def solution(shop: Workshop) -> int:
    """The diff from work/ to the step's own code; before a pass, only when asked twice."""
    state = state_file.load(shop.state_path)
    lesson = current_lesson(shop, state)
    record = state.record(lesson.name)
    if record.status not in {"passed", "skipped"}:
        record.solution_asked += 1
        state_file.save(shop.state_path, state)
        if record.solution_asked < 2:
            shop.out(
                f"Step {lesson.number} has not passed yet: the solution gives the answer away. "
                "`./workshop -s hint` may be enough; ask for the solution once more to see it."
            )
            return 0
    diff = workspace.solution_diff(
        shop.work, lesson.directory, with_tests=lesson.writes_tests, leave_out=lesson.judges
    )
    shop.out(diff.rstrip("\n") if diff else f"work/ is step {lesson.number}'s own code already.")
    return 0


def reset(shop: Workshop) -> int:
    """Back work/ up and put the current step's starting point back."""
    state = state_file.load(shop.state_path)
    lesson = current_lesson(shop, state)
    saved = workspace.back_up(shop.work, shop.backups, f"reset-{lesson.name}")
    if saved:
        shop.out(f"Backed up work/ to {saved.relative_to(shop.root)}.")
    workspace.clear(shop.work)
    return start(shop, lesson.name, fresh=True)


def skip(shop: Workshop) -> int:
    """Adopt the current step's own code and record the step as skipped, not passed."""
    state = state_file.load(shop.state_path)
    lesson = current_lesson(shop, state)
    saved = workspace.back_up(shop.work, shop.backups, f"skip-{lesson.name}")
    if saved:
        shop.out(f"Backed up work/ to {saved.relative_to(shop.root)}.")
    workspace.copy_snapshot(
        lesson.directory, shop.work, with_tests=lesson.writes_tests, leave_out=lesson.judges
    )
    record = state.record(lesson.name)
    record.status = "skipped"
    record.baseline = workspace.manifest(shop.work)
    state_file.save(shop.state_path, state)
    shop.out(f"work/ now holds steps/{lesson.name}; step {lesson.number} is recorded as skipped.")
    lessons = shop.lessons()
    following = lessons.index(lesson) + 1
    if following < len(lessons):
        shop.out(f"Next: `./workshop -s start -- {lessons[following].number}`.")
    return 0


def parser() -> argparse.ArgumentParser:
    """The commands and their options."""
    top = argparse.ArgumentParser(prog="workshop", description=__doc__)
    commands = top.add_subparsers(dest="command", required=True)
    begin = commands.add_parser("start", help="start a step in work/")
    begin.add_argument("step", help="01, 2, 03_database, ...")
    begin.add_argument("--force", action="store_true", help="replace a changed work/ (backed up)")
    begin.add_argument("--fresh", action="store_true", help="the step before's code, not yours")
    judge = commands.add_parser("check", help="judge work/ with the step's tests")
    judge.add_argument("step", nargs="?", help="the current step (the default)")
    judge.add_argument("--json", type=Path, help="also write exercism's results.json here")
    judge.add_argument("--failed-first", action="store_true", help="run the last failures first")
    watch = commands.add_parser("watch", help="check on every change in work/")
    watch.add_argument("--poll", action="store_true", help="poll (WSL, mounted folders)")
    for name in ("hint", "progress", "solution", "reset", "skip"):
        commands.add_parser(name)
    return top


def main(argv: Sequence[str], shop: Workshop) -> int:
    """Run one command; 0 on success, 1 when a check fails or a command is refused."""
    args = parser().parse_args(argv)
    try:
        if args.command == "start":
            return start(shop, args.step, force=args.force, fresh=args.fresh)
        if args.command == "check":
            return check(shop, args.step, json_path=args.json, failed_first=args.failed_first)
        if args.command == "watch":
            from tools.learner.watch import watch

            return watch(shop, poll=args.poll)
        commands: dict[str, Callable[[Workshop], int]] = {
            "hint": hint,
            "progress": progress,
            "solution": solution,
            "reset": reset,
            "skip": skip,
        }
        return commands[args.command](shop)
    except (RefusedError, LessonError) as refusal:
        shop.out(str(refusal))
        return 1
