"""The learner's commands on a repository of the test's own: start, check, hint, progress, ..."""

from __future__ import annotations

import json
from pathlib import Path

from tools.learner.cli import step_to_check
from tools.learner.tests.learners import ROOT, Learner, matches_golden

GOLDEN = Path(__file__).resolve().parent / "golden"


def break_on_purpose(path: Path, old: str, new: str, *, everywhere: bool = False) -> None:
    """Put a deliberate bug into one of the learner's files."""
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{old!r} is not in {path}"
    path.write_text(text.replace(old, new, -1 if everywhere else 1), encoding="utf-8")


def test_start_on_a_clean_tree_copies_the_step_before_but_never_its_tests(
    learner: Learner,
) -> None:
    status, said = learner.run("start", "02")

    assert status == 0, said
    config = learner.root / "steps" / "01_config" / "app" / "config.py"
    assert (learner.work / "app" / "config.py").read_bytes() == config.read_bytes()
    assert not (learner.work / "app" / "main.py").exists()
    assert not (learner.work / "tests").exists()
    assert not (learner.work / "learn.toml").exists()
    assert "1. `create_app(settings)` with a lifespan, and `GET /health/live`" in said
    assert "docs/steps/02_app.md" in said


def test_the_first_step_starts_from_nothing_but_its_packages(learner: Learner) -> None:
    status, said = learner.run("start", "1")

    assert status == 0, said
    assert sorted(path.name for path in learner.work.iterdir()) == ["pyproject.toml"]


def test_start_refuses_a_workspace_with_changes_and_force_backs_it_up(learner: Learner) -> None:
    learner.run("start", "02")
    (learner.work / "app" / "mine.py").write_text("MINE = 1\n")

    refused, said = learner.run("start", "01")

    assert refused == 1
    assert "work/ has changes of yours (app/mine.py)" in said
    assert (learner.work / "app" / "mine.py").is_file()

    forced, said = learner.run("start", "01", "--force")

    assert forced == 0, said
    assert not (learner.work / "app").exists()
    [backup] = (learner.root / ".workshop" / "backups").iterdir()
    assert (backup / "app" / "mine.py").read_text() == "MINE = 1\n"


def test_check_on_a_copy_of_the_step_passes_every_task(learner: Learner) -> None:
    learner.run("start", "02")
    learner.copy_in("02_app", "app")

    status, said = learner.run("check")

    assert status == 0, said
    assert "✓ 1. `create_app(settings)` with a lifespan, and `GET /health/live`" in said
    assert "✓ Step 02 passes: every task is done." in said
    assert "Next: `./workshop -s start -- 03`" in said


def test_check_on_the_step_befores_code_says_what_the_step_expects(learner: Learner) -> None:
    learner.run("start", "02")

    status, said = learner.run("check")

    assert status == 1
    # conftest.py imports create_app from app.main, which step 01's code does not have.
    assert (
        "Nothing could run: step 02 expects `app/main.py`: the module that builds the app." in said
    )
    assert "First failing: task 1, `create_app(settings)` with a lifespan" in said


def test_an_import_error_in_the_learners_code_names_what_the_step_expects(
    learner: Learner,
) -> None:
    learner.run("start", "02")
    learner.copy_in("02_app", "app")
    middleware = learner.work / "app" / "middleware.py"
    break_on_purpose(middleware, "request_id_var", "the_request_id", everywhere=True)

    status, said = learner.run("check")

    assert status == 1
    assert "step 02 expects `app/middleware.py` to define `request_id_var: ContextVar[str]`" in said


def test_a_deliberate_bug_fails_the_right_task_with_its_title(learner: Learner) -> None:
    learner.run("start", "02")
    learner.copy_in("02_app", "app")
    break_on_purpose(learner.work / "app" / "middleware.py", '"nosniff"', '"sniff"')

    status, said = learner.run("check")

    assert status == 1
    assert "✓ 1. `create_app(settings)` with a lifespan" in said
    title = "Pure ASGI middleware: request id, timing, security headers, CORS, trusted hosts"
    assert f"✗ 2. {title}" in said
    assert f"First failing: task 2, {title}" in said
    assert "assert 'sniff' == 'nosniff'" in said


def test_a_failure_inside_the_learners_code_shows_their_frames_and_not_the_libraries(
    learner: Learner,
) -> None:
    learner.run("start", "02")
    learner.copy_in("02_app", "app")
    break_on_purpose(
        learner.work / "app" / "routes" / "health.py",
        'return {"status": "ok"}',
        'raise RuntimeError("broken on purpose")',
    )

    status, said = learner.run("check")

    assert status == 1
    assert "First failing: task 1, `create_app(settings)`" in said
    assert "work/app/routes/health.py:11 in live" in said
    assert "RuntimeError: broken on purpose" in said
    assert "site-packages" not in said


def test_hints_come_in_order_and_the_first_by_itself_after_two_failed_checks(
    learner: Learner,
) -> None:
    learner.run("start", "01")
    hints = [
        '`class Settings(BaseSettings)` and `model_config = SettingsConfigDict(env_file=".env"',
        "Make `secret_key` a `SecretStr`",
        "Validation messages are yours",
    ]

    _, first = learner.run("check")
    _, second = learner.run("check")

    assert "Hint" not in first
    assert f"Hint: (1 of 3, after 2 checks) Start with {hints[0]}" in second
    for number in (2, 3):
        _, said = learner.run("hint")
        assert f"Hint {number} of 3 for task 1, Typed settings" in said
        assert hints[number - 1] in said
    _, said = learner.run("hint")
    assert "No more hints for task 1" in said


def test_progress_is_kept_across_runs(learner: Learner) -> None:
    learner.run("start", "01")
    learner.run("skip")
    learner.run("start", "02")
    learner.copy_in("02_app", "app")
    break_on_purpose(learner.work / "app" / "middleware.py", '"nosniff"', '"sniff"')
    learner.run("check")

    # A new run: everything it knows comes from .workshop/learner.json.
    status, said = learner.run("progress")

    assert status == 0
    assert "↷ skipped     step 01: Settings" in said
    assert "… started     step 02: The app  <- you are here" in said
    assert "✓ 1. `create_app(settings)`" in said
    assert "✗ 2. Pure ASGI middleware" in said
    assert "not started step 03: The async database" in said


def test_reset_backs_up_the_workspace_and_starts_the_step_again(learner: Learner) -> None:
    learner.run("start", "02")
    learner.copy_in("02_app", "app")

    status, said = learner.run("reset")

    assert status == 0, said
    assert not (learner.work / "app" / "main.py").exists()
    [backup] = (learner.root / ".workshop" / "backups").iterdir()
    main = learner.root / "steps" / "02_app" / "app" / "main.py"
    assert (backup / "app" / "main.py").read_bytes() == main.read_bytes()
    assert f"Backed up work/ to .workshop/backups/{backup.name}" in said


def test_skip_records_the_step_as_skipped_and_start_carries_its_code_forward(
    learner: Learner,
) -> None:
    learner.run("start", "01")
    (learner.work / "notes.txt").write_text("mine\n")

    learner.run("skip")
    status, said = learner.run("start", "02")

    assert status == 0, said
    assert "Carrying your step 01 code in work/ forward to step 02." in said
    config = learner.root / "steps" / "01_config" / "app" / "config.py"
    assert (learner.work / "app" / "config.py").read_bytes() == config.read_bytes()
    state = json.loads((learner.root / ".workshop" / "learner.json").read_text())
    assert state["steps"]["01_config"]["status"] == "skipped"
    assert state["current"] == "02_app"


def test_solution_before_a_pass_needs_asking_twice(learner: Learner) -> None:
    learner.run("start", "02")

    _, first = learner.run("solution")
    _, second = learner.run("solution")

    assert "has not passed yet" in first
    assert "+++ steps/02_app/app/main.py" not in first
    assert "--- /dev/null\n+++ steps/02_app/app/main.py" in second
    assert "+def create_app(settings: Settings | None = None) -> FastAPI:" in second


def test_solution_after_a_pass_is_the_diff_at_once(learner: Learner) -> None:
    learner.run("start", "02")
    learner.copy_in("02_app", "app")
    break_on_purpose(learner.work / "app" / "middleware.py", "\n", "\n# my own comment\n")
    learner.run("check")

    _, said = learner.run("solution")

    assert "--- work/app/middleware.py\n+++ steps/02_app/app/middleware.py" in said
    assert "-# my own comment" in said


def test_the_step_a_check_installs_for_is_the_current_one_past_the_options(
    learner: Learner,
) -> None:
    learner.run("start", "02")

    chosen = step_to_check(learner.root, ["--json", "results.json"])

    assert chosen == learner.root / "steps" / "02_app"


def test_json_results_match_the_golden_file(learner: Learner, tmp_path: Path) -> None:
    learner.run("start", "01")
    learner.copy_in("01_config", "app")
    break_on_purpose(
        learner.work / "app" / "config.py",
        'log_format: LogFormat = "json"',
        'log_format: LogFormat = "console"',
    )
    results = tmp_path / "results.json"

    status, said = learner.run("check", "--json", str(results))

    assert status == 1, said
    data = json.loads(results.read_text())
    assert data["version"] == 3
    assert data["status"] == "fail"
    assert {test["status"] for test in data["tests"]} == {"pass", "fail"}
    matches_golden(results.read_text(), GOLDEN / "results.json")


def test_step_03_on_step_02s_code_fails_on_its_first_task_with_its_title_and_hint(
    learner: Learner,
) -> None:
    learner.run("start", "03")
    learner.run("check")

    status, said = learner.run("check")

    assert status == 1
    assert "First failing: task 1, Settings for the pool, its timeouts and Argon2" in said
    assert "Hint: (1 of 2, after 2 checks)" in said
    matches_golden(said + "\n", ROOT / "docs" / "learner" / "check-failing.txt")


def test_step_03_passes_on_the_learners_copy_of_step_03(learner: Learner) -> None:
    learner.run("start", "03")
    learner.copy_in("03_database", "app", "alembic.ini", "migrations")

    status, said = learner.run("check")

    assert status == 0, said
    matches_golden(said + "\n", ROOT / "docs" / "learner" / "check-passing.txt")
