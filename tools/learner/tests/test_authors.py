"""The authors' check on copies of the steps: it passes on them, and fails on each breakage."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tools import step_runs
from tools.learner.authors import check_step
from tools.learner.lessons import LessonError, load_lesson
from tools.learner.tests.learners import Learner


def test_the_authors_check_passes_on_step_02(learner: Learner) -> None:
    assert check_step(learner.root, "02", python=sys.executable, out=lambda _: None) == []


def test_the_authors_check_fails_when_a_task_test_is_broken_on_purpose(learner: Learner) -> None:
    tests = learner.root / "steps" / "03_database" / "tests" / "test_config.py"
    text = tests.read_text(encoding="utf-8")
    # The task's real tests move to another task; what is left for it passes on any code.
    text = text.replace('@pytest.mark.task("database-settings")', '@pytest.mark.task("settings")')
    text += (
        '\n\n@pytest.mark.task("database-settings")\n'
        "def test_broken_on_purpose() -> None:\n"
        '    assert Settings().log_level == "INFO"\n'
    )
    tests.write_text(text, encoding="utf-8")

    problems = check_step(learner.root, "03", python=sys.executable, out=lambda _: None)

    assert any(
        "task 'database-settings'" in problem and "passes on 02_app's code" in problem
        for problem in problems
    ), problems


def test_a_step_that_breaks_the_step_befores_tests_fails_the_check(learner: Learner) -> None:
    config = learner.root / "steps" / "02_app" / "app" / "config.py"
    config.write_text(
        config.read_text().replace(
            'log_format: LogFormat = "json"', 'log_format: LogFormat = "console"'
        )
    )

    problems = check_step(learner.root, "02", python=sys.executable, out=lambda _: None)

    assert any(
        "tests/test_config.py::test_defaults_are_for_local_development fails on 02_app's code"
        in problem
        for problem in problems
    ), problems


def test_a_test_without_a_task_fails_the_check(learner: Learner) -> None:
    extra = learner.root / "steps" / "02_app" / "tests" / "test_unmarked.py"
    extra.write_text("def test_without_a_task() -> None:\n    assert True\n")

    problems = check_step(learner.root, "02", python=sys.executable, out=lambda _: None)

    assert any("test_unmarked.py::test_without_a_task has no task marker" in p for p in problems)


def test_below_sets_the_environment_the_step_befores_tests_run_with(learner: Learner) -> None:
    # A step 01 test that passes only with a variable step 02 sets for it in [below].
    (learner.root / "steps" / "01_config" / "tests" / "test_below.py").write_text(
        "import os\n\nimport pytest\n\n\n"
        '@pytest.mark.task("settings")\n'
        "def test_runs_with_the_environment_step_02_gives() -> None:\n"
        '    assert os.environ.get("WORKSHOP_BELOW_CHECK") == "lifted"\n',
        encoding="utf-8",
    )
    learn = learner.root / "steps" / "02_app" / "learn.toml"
    plain = learn.read_text(encoding="utf-8")

    broken = check_step(learner.root, "02", python=sys.executable, out=lambda _: None)
    learn.write_text(
        plain + '\n[below]\nenv = { WORKSHOP_BELOW_CHECK = "lifted" }\nreason = "a test"\n',
        encoding="utf-8",
    )
    lines: list[str] = []
    fixed = check_step(learner.root, "02", python=sys.executable, out=lines.append)

    assert any("test_below.py::test_runs_with_the_environment" in p for p in broken), broken
    assert fixed == [], fixed
    assert "  with WORKSHOP_BELOW_CHECK=lifted: a test" in lines, lines


def test_below_without_a_reason_is_refused(learner: Learner) -> None:
    learn = learner.root / "steps" / "02_app" / "learn.toml"
    learn.write_text(
        learn.read_text(encoding="utf-8") + '\n[below]\nenv = { RATE_LIMIT = "9/second" }\n',
        encoding="utf-8",
    )

    with pytest.raises(LessonError, match=r"02_app/learn.toml \[below\] needs `reason`"):
        load_lesson(learn.parent)


def test_unchanged_earlier_test_files_are_trusted_only_from_the_steps_record_of_its_files(
    learner: Learner,
) -> None:
    # A git checkout of the copy, as step_runs reads it, with step 02's session recorded.
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid"]
    for command in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "copy"]):
        subprocess.run([*git, *command], cwd=learner.root, check=True, timeout=60)
    step_runs.record_passed("02_app", learner.root)
    trusting: list[str] = []

    assert check_step(learner.root, "02", python=sys.executable, out=trusting.append) == []
    # Step 01's test files are all in step 02 unchanged: none ran again.
    assert "✓ 0 of 01_config's tests pass on 02_app's code" in trusting, trusting
    assert any(
        "test files 02_app has unchanged passed in its own session" in line for line in trusting
    )

    # A change to step 02 voids the record: step 01's tests run again, and catch it.
    config = learner.root / "steps" / "02_app" / "app" / "config.py"
    config.write_text(
        config.read_text().replace(
            'log_format: LogFormat = "json"', 'log_format: LogFormat = "console"'
        )
    )
    problems = check_step(learner.root, "02", python=sys.executable, out=lambda _: None)

    assert any(
        "tests/test_config.py::test_defaults_are_for_local_development fails on 02_app's code"
        in problem
        for problem in problems
    ), problems
