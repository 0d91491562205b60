"""The authors' side of the exercises: each one's test fails on its step and passes on its answer.

An exercise is `steps/NN_name/exercises/<exercise>/`: `test_<exercise>.py`, the
opt-in test a learner runs with `./workshop -s "exercise(NN_name)" -- <exercise>`,
and `answer.patch`, the reference answer (a diff against the step, out of the
learner's way). Both checks run in a fresh clone: the first with the page's
command, the second with the step's own tests beside the exercise's.
"""

from __future__ import annotations

import re
import subprocess
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


def apply_answer(clone: Path, exercise: Path, *, reverse: bool = False) -> None:
    """Apply an exercise's answer to the clone's copy of its step (or take it back)."""
    step = exercise.parent.parent.name
    patch = exercise.relative_to(ROOT) / "answer.patch"
    subprocess.run(
        ["git", "apply", *(["--reverse"] if reverse else []), f"--directory=steps/{step}", patch],
        cwd=clone,
        check=True,
        timeout=60,
    )


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
    page = (DOCS / "steps" / f"{step}.md").read_text(encoding="utf-8")
    assert f'./workshop -s "exercise({step})" -- {exercise.name}' in page
    assert f"steps/{step}/exercises/{exercise.name}/answer.patch" in page


@pytest.mark.parametrize("step", STEPS, ids=lambda path: path.name)
def test_every_exercise_fails_on_its_step(clone: Path, step: Path) -> None:
    names = [exercise.name for exercise in EXERCISES if exercise.parent.parent == step]
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


@pytest.mark.parametrize("exercise", EXERCISES, ids=exercise_id)
def test_exercise_passes_with_its_answer_and_so_do_the_steps_tests(
    clone: Path, exercise: Path
) -> None:
    step = exercise.parent.parent.name
    apply_answer(clone, exercise)
    try:
        result = workshop(clone, f"step({step})", "tests", f"exercises/{exercise.name}")
    finally:
        apply_answer(clone, exercise, reverse=True)

    assert result.returncode == 0, result.output
    assert re.search(r"^=+ \d+ passed", result.output, re.MULTILINE), result.output


def test_the_exercise_session_lists_a_steps_exercises(clone: Path) -> None:
    step = EXERCISES[0].parent.parent.name
    names = [exercise.name for exercise in EXERCISES if exercise.parent.parent.name == step]

    result = workshop(clone, f"exercise({step})")

    assert result.returncode == 0, result.output
    for name in names:
        assert re.search(rf"^{name}: \S", result.output, re.MULTILINE), result.output
