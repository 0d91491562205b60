"""Records of the steps' whole test runs that passed, kept for the page checks.

Every step's page and README show its whole test run, `./workshop -s
"step(NN_name)"`, and the page checks (tests/test_commands.py) run each page's
commands in a fresh clone. The step session has usually just run that very
command on the same files: it records the run here, under a fingerprint of the
step's files and the noxfile, and a page check that finds the record of the
same files trusts it instead of running the suite a second time.
"""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RECORDS = ROOT / ".workshop" / "passed-step-runs"


def fingerprint(step: str) -> str:
    """A digest of the step's files (committed or not, as git sees them) and of the noxfile."""
    files = [f"steps/{step}", "noxfile.py"]
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard", "--", *files],
        cwd=ROOT,
        capture_output=True,
        check=True,
        timeout=60,
    ).stdout.decode()
    digest = hashlib.sha256()
    for name in sorted(set(filter(None, listed.split("\0")))):
        path = ROOT / name
        if path.is_file():  # a file deleted but not yet committed is not there
            digest.update(name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def record_passed(step: str) -> None:
    """Note that the step's whole test run passed on its files as they are now."""
    RECORDS.mkdir(parents=True, exist_ok=True)
    (RECORDS / f"{step}-{fingerprint(step)}").touch()


def has_passed(step: str) -> bool:
    """Say whether the step's whole test run passed on its files as they are now."""
    return (RECORDS / f"{step}-{fingerprint(step)}").is_file()
