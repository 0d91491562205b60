"""A fresh clone of the working tree, and a learner's shell to run commands in it."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from helpers import ROOT

sys.path.insert(0, str(ROOT))

from tools import embedded

# What `git clone` would give, plus what is not committed yet: the tracked files
# as they are in the working tree, and new files that are not ignored.
_LIST_FILES = ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"]
_ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


@dataclass(frozen=True)
class Result:
    """What a command did: its exit status and everything it wrote, both streams in order."""

    returncode: int
    output: str


def fresh_clone(destination: Path) -> Path:
    """Copy the working tree's files into `destination` as a new git repository; return it."""
    listed = subprocess.run(
        _LIST_FILES, cwd=ROOT, capture_output=True, check=True, timeout=60
    ).stdout
    for name in filter(None, listed.decode().split("\0")):
        source = ROOT / name
        if not source.is_file():
            continue  # deleted in the working tree, not yet committed
        target = destination / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)
    git = ["git", "-c", "user.name=workshop", "-c", "user.email=workshop@example.invalid"]
    for command in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "fresh clone"]):
        subprocess.run([*git, *command], cwd=destination, check=True, timeout=60)
    # The wrapper's nox and uv are the same for every clone: reuse them rather
    # than installing them again (CI's first `./workshop` proves that install).
    tools = ROOT / ".workshop" / "tools"
    if (tools / "bin" / "nox").is_file():
        (destination / ".workshop").mkdir()
        (destination / ".workshop" / "tools").symlink_to(tools)
    return destination


def learner_environment(**extra: str) -> dict[str, str]:
    """Return the environment of a learner's shell: this one without the test session's venv."""
    venv_bin = str(Path(sys.prefix) / "bin")
    env = {
        name: value
        for name, value in os.environ.items()
        if name != "VIRTUAL_ENV" and not name.startswith("NOX")
    }
    env["PATH"] = os.pathsep.join(
        entry for entry in env.get("PATH", "").split(os.pathsep) if entry != venv_bin
    )
    # The clone shares this tree's embedded servers (if any are needed)
    # instead of installing and starting its own.
    env.setdefault("WORKSHOP_HOME", str(embedded.home()))
    # run(NN_name) on a scratch database, emptied first: a check neither sees
    # nor changes what the learner keeps in the step's own run database.
    env["WORKSHOP_RUN_SCRATCH"] = "1"
    env.update(extra)
    return env


# Set SIGINT back to its default, then become the command: see as_in_a_terminal.
_DEFAULT_SIGINT_THEN_EXEC = (
    "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); "
    "os.execvp(sys.argv[1], sys.argv[1:])"
)


def as_in_a_terminal(command: list[str]) -> list[str]:
    """The command, started so that Ctrl-C (SIGINT) reaches it, as in a learner's terminal.

    A check started in the background of a script inherits SIGINT ignored, and
    a shell cannot undo that for itself: its runs would only stop at SIGTERM.
    """
    return [sys.executable, "-c", _DEFAULT_SIGINT_THEN_EXEC, *command]


def run_script(script: str, cwd: Path, env: dict[str, str], timeout: float) -> Result:
    """Run a bash script to the end (stopping all it started after `timeout` seconds)."""
    with subprocess.Popen(
        as_in_a_terminal(["bash", "-euo", "pipefail", "-c", script]),
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    ) as process:
        try:
            output, _ = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            stop_group(process)
            output, _ = process.communicate()
            return Result(-1, clean(output) + f"\n(still running after {timeout:.0f} s: stopped)")
    return Result(process.returncode, clean(output))


def stop_group(process: subprocess.Popen[bytes]) -> None:
    """Stop a process and all it started as Ctrl-C would; whatever lingers, firmly."""
    for stop_signal, grace in ((signal.SIGINT, 30), (signal.SIGTERM, 10)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, stop_signal)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=grace)
            break
    # Anything the leader left behind in its group (embedded servers run in
    # sessions of their own and are not touched).
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def clean(output: bytes) -> str:
    """Decode a command's output without the colour codes a CI terminal may add."""
    return _ANSI_ESCAPE.sub("", output.decode("utf-8", errors="replace"))
