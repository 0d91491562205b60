"""A learner typing the workshop's commands, and golden files to hold their output to."""

from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

from tools.learner.cli import Workshop, main

ROOT = Path(__file__).resolve().parents[3]
# Every step there is, so that what a learner is told after a pass is what they would see.
STEPS = sorted(path.name for path in (ROOT / "steps").iterdir() if (path / "learn.toml").is_file())
# LEARNER_UPDATE_GOLDEN=1 rewrites the golden files (and the docs' transcripts) from this run.
UPDATE_GOLDEN = os.environ.get("LEARNER_UPDATE_GOLDEN") == "1"


@dataclass
class Learner:
    """A learner typing the workshop's commands in a repository of their own."""

    root: Path
    said: list[str] = field(default_factory=list)

    @property
    def work(self) -> Path:
        """The learner's workspace."""
        return self.root / "work"

    def workshop(self) -> Workshop:
        """The commands' view of the repository (a new one per command, as each run is)."""
        return Workshop(
            self.root, python=sys.executable, env=dict(os.environ), out=self.said.append
        )

    def run(self, *args: str) -> tuple[int, str]:
        """Run one command; return its exit status and what it printed."""
        self.said.clear()
        status = main(list(args), self.workshop())
        return status, "\n".join(self.said)

    def copy_in(self, step: str, *names: str) -> None:
        """Put a step's own files into work/ (what a learner who did the step would have)."""
        for name in names:
            source = self.root / "steps" / step / name
            target = self.work / name
            if target.is_dir():
                shutil.rmtree(target)
            if source.is_dir():
                shutil.copytree(source, target)
            else:
                shutil.copy2(source, target)


def matches_golden(text: str, golden: Path) -> None:
    """Compare with a golden file (or rewrite it when LEARNER_UPDATE_GOLDEN=1)."""
    if UPDATE_GOLDEN:
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_text(text, encoding="utf-8")
    assert golden.is_file(), f"{golden} is missing: run with LEARNER_UPDATE_GOLDEN=1 to write it."
    assert text == golden.read_text(encoding="utf-8"), (
        f"the output differs from {golden.relative_to(ROOT)}; if the change is meant, "
        "rewrite it with LEARNER_UPDATE_GOLDEN=1."
    )
