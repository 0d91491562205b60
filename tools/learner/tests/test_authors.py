"""The authors' check on copies of the steps: it passes on them, and fails on each breakage."""

from __future__ import annotations

import sys

from tools.learner.authors import check_step
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
