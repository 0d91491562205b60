"""Fixtures: a repository of the test's own (a copy of the steps), and a learner working in it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tools.learner.tests.learners import ROOT, STEPS, Learner


@pytest.fixture
def learner(tmp_path: Path) -> Learner:
    """A fresh repository: the steps copied, no work/ and no progress yet."""
    for step in STEPS:
        shutil.copytree(
            ROOT / "steps" / step,
            tmp_path / "steps" / step,
            ignore=shutil.ignore_patterns("__pycache__", ".pytest_cache", "*.pyc"),
        )
    return Learner(tmp_path)
