"""Every shell command on the step pages and in the step READMEs works, from a fresh clone.

A learner copies the fenced `bash` blocks into a terminal at the repository's
root, so this runs each block the same way, in order, in a fresh clone of the
working tree. What a command's trailing comment says decides what is expected:

    ./workshop -s "run(02_app)"   # Ctrl-C stops it      runs until stopped: started, used
                                                          by the page's later blocks, stopped
    ... # fails on purpose                                must exit with a non-zero status
    (anything else)                                       must finish with status 0

A block followed by an admonition titled "Output" must print that block's text
block, line by line and in order among its own lines (`…` stands for anything).
A server listens on a free port instead of 8000 (UVICORN_PORT), and the blocks
after it are pointed at that port.

A step's page and its README run in one clone, the page first, as a learner
would read them. Both show the step's whole test run, `./workshop -s
"step(NN_name)"`, the command of the step's own session: it runs once, not
again where it has already passed on the same files, in this clone or as the
step session in this checkout (tools/step_runs.py keeps those records). A
page's narrowed run of the same step (`-- -q tests/test_properties.py`: only
test files, `-q`, `-v` or `-x`) runs a part of that whole run, so it is
trusted likewise; that the files it names exist is checked without running it.
"""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pytest
from clones import (
    Result,
    as_in_a_terminal,
    fresh_clone,
    learner_environment,
    run_script,
    stop_group,
)
from helpers import DOCS, ROOT, STEPS

from tools import step_runs

# What one fresh clone runs, in order: the steps' index, then each step's page and README.
CLONE_RUNS = {
    "steps/index": [DOCS / "steps" / "index.md"],
    **{step.name: [DOCS / "steps" / f"{step.name}.md", step / "README.md"] for step in STEPS},
}
SOURCES = [source for sources in CLONE_RUNS.values() for source in sources]
# A step's whole run (step 07 measures coverage) on a busy machine takes minutes.
BLOCK_TIMEOUT = 1200.0
SERVER_START_TIMEOUT = 300.0
DEFAULT_PORT = "8000"

_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,})(?P<info>[^`\s]*)")
_OUTPUT_TITLE = re.compile(r'^[ \t]*(\?\?\?\+?|!!!)[ \t]+\w+[ \t]+"Output"[ \t]*$')
# A trailing comment, after the last quote on the line.
_COMMENT = re.compile(r"""\s#\s+(?P<note>[^"']*)$""")
# Commands that only work inside a step's environment: on a page they go through ./workshop.
_BARE = re.compile(r"^(?:\w+=\S*\s+)*(?:nox|pytest|uvicorn|uv|pip|alembic|python3? -m)\b")

# Sessions that run until stopped: final/ (serve), the docs' live server, a
# step's app (run(NN_name), once the step has app/main.py).
_RUN_SESSION = re.compile(r'-s\s+"?run\((?P<step>\w+)\)')
# A step's whole test run, with no pytest arguments.
_WHOLE_STEP_RUN = re.compile(r'^\./workshop -s "step\((?P<step>\w+)\)"\s*$')
# A part of it: some of its test files, with -q, -v or -x at most.
_NARROWED_STEP_RUN = re.compile(
    r'^\./workshop -s "step\((?P<step>\w+)\)" --(?P<args>(?:\s+(?:-[qvx]|tests/test_\w+\.py))+)\s*$'
)
_SERVE_SESSION = re.compile(r"-s\s+\"?serve\b|-s\s+\"?docs\"?\s+--\s+serve\b")

Kind = Literal["finishes", "fails", "serves"]


def runs_until_stopped(command: str) -> bool:
    """Say whether a command starts a server that only Ctrl-C ends."""
    if _SERVE_SESSION.search(command):
        return True
    run = _RUN_SESSION.search(command)
    return bool(run) and (ROOT / "steps" / run["step"] / "app" / "main.py").is_file()


@dataclass(frozen=True)
class Block:
    """A fenced `bash` block: its text, where it is, and the output the page promises for it."""

    source: Path
    line: int
    script: str
    output: tuple[str, ...] | None

    @property
    def where(self) -> str:
        """Name the block as a person would find it."""
        return f"{self.source.relative_to(ROOT)}:{self.line}"

    @property
    def commands(self) -> list[str]:
        """Return the block's commands, continuation lines joined, comments and blanks left out."""
        commands = self.script.replace("\\\n", " ").splitlines()
        return [line for line in commands if line.strip() and not line.lstrip().startswith("#")]

    @property
    def kind(self) -> Kind:
        """Say what the block's trailing comments promise."""
        notes = [match["note"] for c in self.commands if (match := _COMMENT.search(c))]
        if any("Ctrl-C" in note for note in notes):
            return "serves"
        if any(note.startswith("fails") for note in notes):
            return "fails"
        return "finishes"


def fenced_blocks(text: str) -> Iterator[tuple[int, str, list[str], int]]:
    """Yield (line of the opening fence, info string, body lines, line after the fence)."""
    lines = text.splitlines()
    index = 0
    while index < len(lines):
        opening = _FENCE.match(lines[index])
        if not opening:
            index += 1
            continue
        indent, fence = len(opening["indent"]), opening["fence"]
        end = index + 1
        while end < len(lines) and lines[end].strip() != fence:
            end += 1
        body = [line[indent:] for line in lines[index + 1 : end]]
        yield index + 1, opening["info"], body, end + 1
        index = end + 1


def bash_blocks(source: Path) -> list[Block]:
    """Return a page's `bash` blocks, each with the "Output" block that follows it, if any."""
    text = source.read_text(encoding="utf-8")
    lines = text.splitlines()
    fences = list(fenced_blocks(text))
    blocks = []
    for position, (line, info, body, after) in enumerate(fences):
        if info != "bash":
            continue
        following = next((lines[i] for i in range(after, len(lines)) if lines[i].strip()), "")
        output = None
        if _OUTPUT_TITLE.match(following):
            _, next_info, next_body, _ = fences[min(position + 1, len(fences) - 1)]
            if position + 1 == len(fences) or next_info != "text":
                raise ValueError(f"{source}:{line}: an Output admonition must hold a text block.")
            output = tuple(next_body)
        blocks.append(Block(source, line, "\n".join(body) + "\n", output))
    return blocks


def missing_line(expected: Sequence[str], output: str) -> str | None:
    """Return the first expected line not found in order among the output's lines, or None."""
    lines = [line.rstrip() for line in output.splitlines()]
    position = 0
    for wanted in (line.rstrip() for line in expected if line.strip()):
        pattern = re.compile(".*".join(re.escape(part) for part in wanted.split("…")))
        while position < len(lines) and not pattern.fullmatch(lines[position]):
            position += 1
        if position == len(lines):
            return wanted
        position += 1
    return None


def free_port() -> int:
    """Return a port that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def answers_http(port: int) -> bool:
    """Say whether an HTTP server answers on this port (any status will do)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as connection:
            connection.settimeout(10)
            connection.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            return connection.recv(16).startswith(b"HTTP/1.")
    except OSError:
        return False


class Server:
    """A block that runs until stopped, started the way a learner starts it."""

    def __init__(self, block: Block, clone: Path, port: int, log: Path) -> None:
        self.block, self.log = block, log
        # The server writes to a file, which no pipe buffer can fill; the
        # child keeps its own descriptor once this one is closed.
        with log.open("wb") as output:
            self.process = subprocess.Popen(
                as_in_a_terminal(["bash", "-c", block.script]),
                cwd=clone,
                env=learner_environment(UVICORN_PORT=str(port)),
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + SERVER_START_TIMEOUT
        while not answers_http(port):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                pytest.fail(f"{block.where}: the server did not answer:\n{self.output()}")
            time.sleep(0.5)

    def output(self) -> str:
        """Return what the server has printed so far."""
        return self.log.read_text(encoding="utf-8", errors="replace")

    def stop(self) -> Result:
        """Stop it as Ctrl-C would, after checking that it was still running."""
        running = self.process.poll() is None
        stop_group(self.process)
        assert running, f"{self.block.where}: the server stopped by itself:\n{self.output()}"
        return Result(self.process.returncode, self.output())


def on_port(text: str, port: int | None) -> str:
    """Point text written for port 8000 at the port the page's server listens on."""
    return text.replace(f":{DEFAULT_PORT}", f":{port}") if port else text


def check_output(block: Block, result: Result, port: int | None) -> None:
    """Fail unless a block printed the output its page promises."""
    if block.output is None:
        return
    expected = [on_port(line, port) for line in block.output]
    missing = missing_line(expected, result.output)
    assert missing is None, f"{block.where} did not print {missing!r}; it printed:\n{result.output}"


def test_the_parser_finds_blocks_their_kind_and_their_output(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "```bash\n./workshop -s x   # Ctrl-C stops it\n```\n\n"
        "1.  An exercise:\n\n"
        "    ```bash\n    ./workshop -s y -- z   # fails until you have done it\n    ```\n\n"
        '    ??? success "Output"\n        ```text\n        one …\n        ```\n\n'
        "```python\nprint('not run')\n```\n"
        "```bash\necho 'a # b' \\\n  c\n# a comment\n```\n"
    )

    serve, fail, finish = bash_blocks(page)

    assert (serve.kind, serve.output, serve.line) == ("serves", None, 1)
    assert (fail.kind, fail.output, fail.commands) == (
        "fails",
        ("one …",),
        ["./workshop -s y -- z   # fails until you have done it"],
    )
    assert (finish.kind, finish.commands) == ("finishes", ["echo 'a # b'    c"])


def test_a_whole_step_run_is_told_from_a_narrowed_one(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        '```bash\n./workshop -s "step(02_app)"\n```\n'
        '```bash\n./workshop -s "step(02_app)" -- -k cors\n```\n'
        '```bash\n./workshop -s "exercise(02_app)"\n```\n'
        '```bash\n./workshop -s "step(07_testing)" -- -q tests/test_a.py tests/test_b.py\n```\n'
    )

    whole, narrowed, exercise, files = bash_blocks(page)

    assert runs_a_whole_step(whole)
    assert steps_run(whole) == ["02_app"]
    assert not runs_a_whole_step(narrowed)
    assert not runs_a_whole_step(exercise)
    # Only test files and -q, -v, -x narrow a run to a part of the whole one.
    assert narrowed_step_run(files) == ("07_testing", ["tests/test_a.py", "tests/test_b.py"])
    assert narrowed_step_run(narrowed) is None
    assert narrowed_step_run(whole) is None
    assert narrowed_step_run(exercise) is None


def test_a_passed_step_run_is_recorded_for_the_files_it_ran_on(tmp_path: Path) -> None:
    step = "01_config"
    # The record is read for the step's files as they are now; another file is another run.
    recorded = step_runs.RECORDS / f"{step}-{step_runs.fingerprint(step)}"
    kept = recorded.read_bytes() if recorded.exists() else None
    try:
        step_runs.record_passed(step, command=["pytest", "-q"], output="tests/test_a.py ..\n")
        assert step_runs.has_passed(step)
        assert step_runs.recorded_output(step) == "nox > pytest -q\ntests/test_a.py ..\n"
        assert step_runs.fingerprint("02_app") != step_runs.fingerprint(step)
    finally:
        if kept is None:
            recorded.unlink()
        else:
            recorded.write_bytes(kept)


def test_a_record_stands_for_a_whole_run_only_if_it_printed_the_promised_output(
    tmp_path: Path,
) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        '```bash\n./workshop -s "step(02_app)"\n```\n\n'
        '??? example "Output"\n'
        "    ```text\n    nox > pytest\n    tests/test_a.py …\n    … passed in …\n"
        "    nox > Session step(02_app) was successful…\n    ```\n"
    )
    (block,) = bash_blocks(page)
    printed = "nox > pytest\ntests/test_a.py ....  [100%]\n===== 4 passed in 0.1s =====\n"

    # nox's verdict is the record's own word; every other promised line must be there.
    assert recorded_run_prints_the_output(block, printed)
    assert not recorded_run_prints_the_output(block, printed.replace("test_a", "test_b"))
    assert already_passed(block, {"02_app": printed})
    assert not already_passed(block, {"02_app": printed.replace("passed", "failed")})


def test_servers_are_told_from_commands_that_finish() -> None:
    assert runs_until_stopped('./workshop -s "run(02_app)"')
    assert runs_until_stopped("./workshop -s serve")
    assert runs_until_stopped("./workshop -s docs -- serve")
    assert not runs_until_stopped('./workshop -s "run(01_config)"')
    assert not runs_until_stopped('./workshop -s "step(02_app)"')


def test_output_lines_match_in_order_with_ellipses_for_what_varies() -> None:
    output = "nox > noise\nx-request-id: 3f0c\n\nserver-timing: app;dur=0.4\n"

    assert missing_line(["x-request-id: …", "server-timing: app;dur=…"], output) is None
    assert missing_line(["server-timing: …", "x-request-id: …"], output) == "x-request-id: …"
    assert missing_line(["x-request-id: 3f0c extra"], output) == "x-request-id: 3f0c extra"


@pytest.mark.parametrize("source", SOURCES, ids=lambda path: str(path.relative_to(ROOT)))
def test_commands_go_through_the_workshop_script(source: Path) -> None:
    blocks = bash_blocks(source)
    assert blocks, f"{source.relative_to(ROOT)} shows no command in a bash block"
    for block in blocks:
        bare = [command for command in block.commands if _BARE.match(command)]
        assert not bare, f"{block.where}: {bare} need a step's environment: use ./workshop"
        if block.kind != "finishes":
            assert len(block.commands) == 1, f"{block.where}: put that command in its own block"
        # A server never finishes: unmarked, it would hang the check until its
        # timeout. One that fails on purpose (refused settings) ends by itself.
        for command in block.commands:
            if runs_until_stopped(command):
                assert block.kind in ("serves", "fails"), (
                    f"{block.where}: {command!r} runs until stopped: mark it `# Ctrl-C stops it`"
                )
        narrowed = narrowed_step_run(block)
        if narrowed:
            step, files = narrowed
            missing = [name for name in files if not (ROOT / "steps" / step / name).is_file()]
            assert not missing, f"{block.where}: steps/{step} has no {missing}"
    text = source.read_text(encoding="utf-8")
    shells = re.findall(r"^\s*```(console|sh|shell|zsh)\b", text, flags=re.MULTILINE)
    assert not shells, f"{source.relative_to(ROOT)}: shell commands go in bash blocks, not {shells}"


def runs_a_whole_step(block: Block) -> bool:
    """Say whether a block is one step's whole test run and nothing else."""
    commands = [command.strip() for command in block.commands]
    return bool(commands) and all(map(_WHOLE_STEP_RUN.match, commands))


def recorded_run_prints_the_output(block: Block, recorded: str) -> bool:
    """Say whether a recorded run printed what the block's Output promises.

    nox's verdict (`nox > Session ... was successful`) is not in a record: a
    record is only written once the run has passed, which is what it says.
    """
    if block.output is None:
        return True
    expected = [line for line in block.output if not line.strip().startswith("nox > Session ")]
    return missing_line(expected, recorded) is None


def steps_run(block: Block) -> list[str]:
    """The steps whose whole test run a block is."""
    return [match["step"] for c in block.commands if (match := _WHOLE_STEP_RUN.match(c.strip()))]


def narrowed_step_run(block: Block) -> tuple[str, list[str]] | None:
    """(step, test files) of a block that runs some of a step's test files and nothing else."""
    if block.output is not None or len(block.commands) != 1:
        return None
    match = _NARROWED_STEP_RUN.match(block.commands[0].strip())
    if match is None:
        return None
    return match["step"], [arg for arg in match["args"].split() if not arg.startswith("-")]


def already_passed(block: Block, in_this_clone: dict[str, str]) -> bool:
    """Say whether a block's step runs have passed, here or in a step session's record.

    A whole run must also have printed the block's promised output; a narrowed
    run is a part of a whole run that passed.
    """
    narrowed = narrowed_step_run(block)
    steps = [narrowed[0]] if narrowed else steps_run(block) if runs_a_whole_step(block) else []
    if not steps:
        return False
    printed = [in_this_clone.get(step) or step_runs.recorded_output(step) for step in steps]
    return all(printed) and all(recorded_run_prints_the_output(block, text) for text in printed)


@pytest.mark.parametrize("name", CLONE_RUNS)
def test_every_command_works_from_a_fresh_clone(name: str, tmp_path: Path) -> None:
    clone = fresh_clone(tmp_path / "clone")
    server: Server | None = None
    port: int | None = None
    # Each step whose whole run passed in this clone: what it printed.
    passed_step_runs: dict[str, str] = {}
    try:
        for block in (block for source in CLONE_RUNS[name] for block in bash_blocks(source)):
            if already_passed(block, passed_step_runs):
                continue
            if block.kind == "serves":
                if server is not None:
                    check_output(server.block, server.stop(), port)
                port = free_port()
                server = Server(block, clone, port, tmp_path / f"server-{block.line}.log")
                continue
            script = on_port(block.script, port)
            result = run_script(script, clone, learner_environment(), BLOCK_TIMEOUT)
            if block.kind == "fails":
                assert result.returncode != 0, f"{block.where} should fail:\n{result.output}"
            else:
                assert result.returncode == 0, f"{block.where} failed:\n{result.output}"
                if runs_a_whole_step(block):
                    passed_step_runs.update(dict.fromkeys(steps_run(block), result.output))
            check_output(block, result, port)
        if server is not None:
            check_output(server.block, server.stop(), port)
            server = None
    finally:
        if server is not None:
            stop_group(server.process)


def test_commands_get_ctrl_c_even_when_the_check_runs_in_a_scripts_background(
    tmp_path: Path,
) -> None:
    # As in a script's background job: this process, and what it starts, ignore SIGINT.
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        asks = "import signal; print(signal.getsignal(signal.SIGINT) is signal.default_int_handler)"
        result = run_script(f'python3 -c "{asks}"', tmp_path, learner_environment(), 60)
    finally:
        signal.signal(signal.SIGINT, previous)

    assert (result.returncode, result.output.strip()) == (0, "True")
