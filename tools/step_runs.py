"""Records of the steps' whole test runs that passed, kept for the page checks.

Every step's page and README show its whole test run, `./workshop -s
"step(NN_name)"`, and the page checks (tests/test_commands.py) run each page's
commands in a fresh clone. The step session has usually just run that very
command on the same files: it records the run here, under a fingerprint of the
step's files and the noxfile, with the command it ran and what pytest printed
(tools/pytest_transcript), and a page check that finds the record of the same
files trusts it instead of running the suite a second time, holding the
page's promised output to what the recorded run printed. The
authors' check trusts it too, for the step before's test files that the step
has unchanged (tools/learner/authors.py).
"""

from __future__ import annotations

import hashlib
import subprocess
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
_RECORDS_IN_ROOT = Path(".workshop") / "passed-step-runs"
RECORDS = ROOT / _RECORDS_IN_ROOT


def fingerprint(step: str, root: Path = ROOT) -> str:
    """A digest of the step's files (committed or not, as git sees them) and of the noxfile."""
    files = [f"steps/{step}", "noxfile.py"]
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard", "--", *files],
        cwd=root,
        capture_output=True,
        check=True,
        timeout=60,
    ).stdout.decode()
    digest = hashlib.sha256()
    for name in sorted(set(filter(None, listed.split("\0")))):
        path = root / name
        if path.is_file():  # a file deleted but not yet committed is not there
            digest.update(name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def record_passed(
    step: str, root: Path = ROOT, *, command: Sequence[str] = (), output: str = ""
) -> None:
    """Note that the step's whole test run passed on its files as they are now.

    The record holds the command the session ran, as nox logs it, and what it printed.
    """
    records = root / _RECORDS_IN_ROOT
    records.mkdir(parents=True, exist_ok=True)
    logged = f"nox > {' '.join(command)}\n" if command else ""
    (records / f"{step}-{fingerprint(step, root)}").write_text(logged + output, encoding="utf-8")


def recorded_output(step: str, root: Path = ROOT) -> str:
    """What the step's whole test run printed, on its files as they are now ("" if none)."""
    record = _record(step, root)
    return record.read_text(encoding="utf-8") if record else ""


def has_passed(step: str, root: Path = ROOT) -> bool:
    """Say whether the step's whole test run passed on its files as they are now."""
    return _record(step, root) is not None


def _record(step: str, root: Path) -> Path | None:
    """The record of a passed whole run on the step's files as they are now, if there is one.

    A tree with no records (a copy of the steps, say, that is no git checkout) has none.
    """
    records = root / _RECORDS_IN_ROOT
    if not records.is_dir():
        return None
    record = records / f"{step}-{fingerprint(step, root)}"
    return record if record.is_file() else None
