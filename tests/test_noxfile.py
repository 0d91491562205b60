"""The noxfile offers a session for every step and for everything the README names."""

from __future__ import annotations

import subprocess
import sys

import pytest
from helpers import ROOT, STEPS

NAMED = [
    "final",
    "resilience",
    "repo",
    "lint",
    "typecheck",
    "docs",
    "browser",
    "serve",
    "mutation",
    "learner",
]
# What `nox` alone runs: the README's test command.
DEFAULT = ["final", "resilience", "repo", "lint", "typecheck", "docs", "browser", "learner"]
# A learner's own commands (docs/learner.md): never part of the test run.
LEARNER_COMMANDS = ["start", "check", "hint", "watch", "progress", "solution", "reset", "skip"]


@pytest.fixture(scope="module")
def sessions() -> dict[str, tuple[bool, str]]:
    """Return {session: (runs by default, description)} as `nox --list` shows them."""
    result = subprocess.run(
        [sys.executable, "-m", "nox", "--list"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    listed: dict[str, tuple[bool, str]] = {}
    # Lines read "* name -> description" (selected) or "- name -> description".
    for line in result.stdout.splitlines():
        if line[:2] in {"* ", "- "} and " -> " in line:
            name, description = line[2:].split(" -> ", 1)
            listed[name.strip()] = (line.startswith("* "), description.strip())
    return listed


def test_every_step_has_a_session(sessions: dict[str, tuple[bool, str]]) -> None:
    missing = [step.name for step in STEPS if f"step({step.name})" not in sessions]
    assert not missing, f"no nox session for {missing}; have {sorted(sessions)}"


def test_every_step_can_be_run_exercised_and_opened_in_an_editor_outside_the_test_run(
    sessions: dict[str, tuple[bool, str]],
) -> None:
    for step in STEPS:
        for kind in ("run", "exercise", "venv"):
            name = f"{kind}({step.name})"
            assert name in sessions, f"no nox session {name!r}; have {sorted(sessions)}"
            assert not sessions[name][0], f"{name} must not be part of the test run"


def test_every_named_session_exists_with_a_description(
    sessions: dict[str, tuple[bool, str]],
) -> None:
    for name in NAMED:
        assert name in sessions, f"no nox session {name!r}; have {sorted(sessions)}"
        assert sessions[name][1], f"session {name!r} has no docstring"


def test_plain_nox_runs_every_step_and_the_checks_but_not_serve_or_mutation(
    sessions: dict[str, tuple[bool, str]],
) -> None:
    selected = {name for name, (default, _) in sessions.items() if default}
    expected = {
        *DEFAULT,
        *(f"step({step.name})" for step in STEPS),
        *(f"authors({step.name})" for step in STEPS),
    }
    assert expected <= selected, f"missing from the default run: {expected - selected}"
    assert "serve" not in selected
    # Mutation testing takes far longer than the tests: run on purpose, not by default.
    assert "mutation" not in selected


def test_the_learner_commands_exist_and_stay_out_of_the_test_run(
    sessions: dict[str, tuple[bool, str]],
) -> None:
    for name in LEARNER_COMMANDS:
        assert name in sessions, f"no nox session {name!r}; have {sorted(sessions)}"
        assert sessions[name][1], f"session {name!r} has no docstring"
        assert not sessions[name][0], f"{name!r} runs by default: it is a learner's command"
