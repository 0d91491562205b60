"""The authors' side of the exercises: each one's test fails on its step and passes on its answer.

An exercise is `steps/NN_name/exercises/<exercise>/`: `test_<exercise>.py`, the
opt-in test a learner runs with `./workshop -s "exercise(NN_name)" -- <exercise>`,
and `answer.patch`, the reference answer (a diff against the step, out of the
learner's way). Both checks run in a fresh clone: the first with the page's
command, the second with the step's own tests beside the exercises'. The
second applies a step's answers together, as a learner who did all of the
step's exercises has them, and runs the step's tests once for all of them; an
answer that does not apply on top of the others gets a run of its own.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from clones import Result, fresh_clone, learner_environment, run_script
from helpers import DOCS, ROOT, STEPS

EXERCISES = sorted(
    path
    for step in STEPS
    for path in (step / "exercises").glob("*")
    if path.is_dir() and not path.name.startswith(("_", "."))
)
TIMEOUT = 600.0


def exercise_id(exercise: Path) -> str:
    """Name an exercise as `NN_name/exercise`."""
    return f"{exercise.parent.parent.name}/{exercise.name}"


def workshop(clone: Path, session: str, *args: str) -> Result:
    """Run a session in the clone as a learner would, with these arguments after `--`."""
    # -R reuses the session's environment from the previous check instead of rebuilding it.
    command = f'./workshop -R -s "{session}" -- {" ".join(args)}'
    return run_script(command, clone, learner_environment(), TIMEOUT)


def apply_answer(clone: Path, exercise: Path, *, reverse: bool = False) -> bool:
    """Apply an exercise's answer to the clone's copy of its step (or take it back).

    Say whether it applied: an answer may not apply on top of another one.
    """
    step = exercise.parent.parent.name
    patch = exercise.relative_to(ROOT) / "answer.patch"
    applied = subprocess.run(
        ["git", "apply", *(["--reverse"] if reverse else []), f"--directory=steps/{step}", patch],
        cwd=clone,
        capture_output=True,
        check=False,
        timeout=60,
    )
    return applied.returncode == 0


@contextmanager
def answers_applied(clone: Path, exercises: list[Path]) -> Iterator[list[Path]]:
    """Apply, in order, each of these answers that applies on top of those before it.

    Yield the ones applied; take them back afterwards, the last first.
    """
    applied: list[Path] = []
    try:
        applied += [exercise for exercise in exercises if apply_answer(clone, exercise)]
        yield applied
    finally:
        for exercise in reversed(applied):
            assert apply_answer(clone, exercise, reverse=True), f"{exercise}: cannot take it back"


def exercises_of(step: Path) -> list[Path]:
    """A step's exercises, in name order."""
    return [exercise for exercise in EXERCISES if exercise.parent.parent == step]


@pytest.fixture(scope="module")
def clone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One fresh clone for all the exercises; each check leaves it as it found it."""
    return fresh_clone(tmp_path_factory.mktemp("exercises") / "clone")


def test_every_step_has_exercises() -> None:
    for step in STEPS:
        assert any(path.parent.parent == step for path in EXERCISES), f"{step.name} has none"


@pytest.mark.parametrize("exercise", EXERCISES, ids=exercise_id)
def test_exercise_has_its_test_its_answer_and_its_place_on_the_page(exercise: Path) -> None:
    step = exercise.parent.parent.name
    assert (exercise / f"test_{exercise.name}.py").is_file()
    assert (exercise / "answer.patch").is_file()
    # pytest imports a test module by its file's name: an answer's test file
    # named like the exercise's own would stop the two from running together.
    added = re.findall(r"^\+\+\+ b/(\S+)", (exercise / "answer.patch").read_text(), re.MULTILINE)
    assert f"test_{exercise.name}.py" not in {Path(path).name for path in added}
    page = (DOCS / "steps" / f"{step}.md").read_text(encoding="utf-8")
    assert f'./workshop -s "exercise({step})" -- {exercise.name}' in page
    assert f"steps/{step}/exercises/{exercise.name}/answer.patch" in page


@pytest.mark.parametrize("step", STEPS, ids=lambda path: path.name)
def test_every_exercise_fails_on_its_step(clone: Path, step: Path) -> None:
    names = [exercise.name for exercise in exercises_of(step)]
    paths = [f"exercises/{name}" for name in names]

    # One run for all of a step's exercises: they all see the step as it is.
    result = workshop(clone, f"exercise({step.name})", *names)

    assert result.returncode != 0, result.output
    for path in paths:
        # Failed tests, not a test file that cannot even be collected.
        failed = rf"^FAILED {re.escape(path)}/"
        assert re.search(failed, result.output, re.MULTILINE), (
            f"{path} did not fail:\n{result.output}"
        )
    assert not re.search(r"^ERROR ", result.output, re.MULTILINE), result.output


@pytest.mark.parametrize("step", STEPS, ids=lambda path: path.name)
def test_with_the_answers_the_exercises_and_the_steps_tests_pass(clone: Path, step: Path) -> None:
    pending = exercises_of(step)
    while pending:
        with answers_applied(clone, pending) as applied:
            assert applied, f"{exercise_id(pending[0])}: its answer does not apply to its step"
            exercises = [f"exercises/{exercise.name}" for exercise in applied]
            result = workshop(clone, f"step({step.name})", "tests", *exercises)

        names = ", ".join(exercise_id(exercise) for exercise in applied)
        assert result.returncode == 0, f"with the answers of {names}:\n{result.output}"
        assert re.search(r"^=+ \d+ passed", result.output, re.MULTILINE), result.output
        for exercise in exercises:
            # Each exercise's own tests ran, and passed.
            ran = rf"^{re.escape(exercise)}/test_\w+\.py \.+"
            assert re.search(ran, result.output, re.MULTILINE), f"{exercise}'s tests did not run"
        pending = [exercise for exercise in pending if exercise not in applied]


def test_the_exercise_session_lists_a_steps_exercises(clone: Path) -> None:
    step = EXERCISES[0].parent.parent.name
    names = [exercise.name for exercise in EXERCISES if exercise.parent.parent.name == step]

    result = workshop(clone, f"exercise({step})")

    assert result.returncode == 0, result.output
    for name in names:
        assert re.search(rf"^{name}: \S", result.output, re.MULTILINE), result.output
