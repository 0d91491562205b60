"""A step whose learner writes tests (step 07): work/ gets the step before's tests to build on."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tools.learner.lessons import LessonError, load_lesson
from tools.learner.tests.learners import Learner

TESTS_STEP, BEFORE = "07_testing", "06_errors"


def step(learner: Learner, name: str) -> Path:
    """A step's directory in the learner's repository."""
    return learner.root / "steps" / name


def judges(learner: Learner) -> list[str]:
    """The tests of the tests step that judge the learner's, as its learn.toml names them."""
    return list(load_lesson(step(learner, TESTS_STEP)).judges)


def test_start_gives_the_step_befores_code_and_its_tests(learner: Learner) -> None:
    status, said = learner.run("start", "07")

    assert status == 0, said
    before = step(learner, BEFORE)
    for name in ("app/db.py", "tests/conftest.py", "tests/test_concurrency.py"):
        assert (learner.work / name).read_bytes() == (before / name).read_bytes(), name
    assert f"work/ now holds steps/{BEFORE}, its tests included." in said
    assert "Your tests are in work/tests/; it asks for:" in said
    assert not (learner.work / "learn.toml").exists()


def test_start_after_passing_the_step_before_backs_up_the_learners_code(
    learner: Learner,
) -> None:
    learner.run("start", "06")
    learner.run("skip")
    # The learner's own step 06: a line of theirs where a bug would be planted.
    (learner.work / "app" / "db.py").write_text("# my own engine\n")

    status, said = learner.run("start", "07")

    assert status == 0, said
    assert "Step 07 is about tests: work/ gets step 06's own code" in said
    db = step(learner, BEFORE) / "app" / "db.py"
    assert (learner.work / "app" / "db.py").read_bytes() == db.read_bytes()
    [backup] = (learner.root / ".workshop" / "backups").glob("*-before-start-07_testing")
    assert (backup / "app" / "db.py").read_text() == "# my own engine\n"


def test_skip_and_solution_leave_the_tests_that_judge_out(learner: Learner) -> None:
    learner.run("start", "07")

    learner.run("solution")
    _, diff = learner.run("solution")
    learner.run("skip")

    ours = step(learner, TESTS_STEP) / "tests" / "test_properties.py"
    assert "--- /dev/null\n+++ steps/07_testing/tests/test_properties.py" in diff
    assert (learner.work / "tests" / "test_properties.py").read_bytes() == ours.read_bytes()
    for judge in judges(learner):
        assert f"steps/07_testing/{judge}" not in diff
        assert not (learner.work / judge).exists(), judge
    state = json.loads((learner.root / ".workshop" / "learner.json").read_text())
    assert state["steps"][TESTS_STEP]["status"] == "skipped"


def test_a_step_where_the_learner_writes_the_app_ignores_tests_in_work(
    learner: Learner,
) -> None:
    learner.run("start", "06")
    learner.run("skip")
    # What a learner carries out of step 07 into the step after it.
    (learner.work / "tests").mkdir()
    (learner.work / "tests" / "test_mine.py").write_text("def test_mine() -> None: ...\n")

    _, diff = learner.run("solution")

    # Step 06's answer is its app: the learner's own tests are no part of it.
    assert diff == "work/ is step 06's own code already."


def test_learner_writes_only_app_or_tests(learner: Learner) -> None:
    learn = step(learner, TESTS_STEP) / "learn.toml"
    learn.write_text(
        learn.read_text(encoding="utf-8").replace(
            'learner_writes = "tests"', 'learner_writes = "docs"'
        ),
        encoding="utf-8",
    )

    with pytest.raises(LessonError, match="`learner_writes` is one of app, tests"):
        load_lesson(learn.parent)
