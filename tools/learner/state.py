"""The learner's progress, kept in `.workshop/learner.json` between runs."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

STATE_VERSION = 1


@dataclass
class StepRecord:
    """What happened on one step: its status, its checks, the hints already shown."""

    status: str = "started"  # started, passed or skipped
    baseline: dict[str, str] = field(default_factory=dict)
    checks: int = 0
    failed_checks: int = 0
    tasks: dict[str, str] = field(default_factory=dict)  # task id -> passed / failed
    first_failing: str | None = None
    hints: dict[str, int] = field(default_factory=dict)  # task id -> hints shown
    solution_asked: int = 0


@dataclass
class State:
    """The current step and every step's record."""

    current: str | None = None
    steps: dict[str, StepRecord] = field(default_factory=dict)

    def record(self, step: str) -> StepRecord:
        """The record of a step, made on first use."""
        return self.steps.setdefault(step, StepRecord())


def load(path: Path) -> State:
    """Read the state file (a fresh state if there is none yet)."""
    if not path.is_file():
        return State()
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return State(
        current=data.get("current"),
        steps={name: StepRecord(**record) for name, record in data.get("steps", {}).items()},
    )


def save(path: Path, state: State) -> None:
    """Write the state file (atomically: a crash leaves the previous one)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    scratch = path.with_suffix(".tmp")
    data: dict[str, Any] = {
        "version": STATE_VERSION,
        "current": state.current,
        "steps": {name: asdict(record) for name, record in state.steps.items()},
    }
    scratch.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    scratch.replace(path)
