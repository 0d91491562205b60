"""A pytest plugin that writes each test's task, outcome and failure to a JSON file.

The learner check loads it (`-p workshop_tasks --tasks-report FILE`) into a
step's own test run; it needs nothing but pytest, so it works in any step's
environment. The runner turns the file into the lesson's report.
"""

from __future__ import annotations

import inspect
import json
import linecache
from pathlib import Path
from typing import Any

import pytest

# Keep the report small: a failure's message and frames are for a person to read.
MAX_MESSAGE_CHARS = 4000


def pytest_addoption(parser: pytest.Parser) -> None:
    """Add --tasks-report."""
    parser.addoption("--tasks-report", help="Write each test's task and outcome to this file.")
    parser.addoption(
        "--tasks-only", help="Run only the tests of these tasks (comma-separated ids)."
    )


def pytest_configure(config: pytest.Config) -> None:
    """Register the recorder when a report file is asked for."""
    path = config.getoption("--tasks-report")
    if path:
        config.pluginmanager.register(Recorder(Path(path)), "workshop-tasks-recorder")


def failure_of(excinfo: pytest.ExceptionInfo[BaseException]) -> dict[str, Any]:
    """The exception's type, message and frames (path, line, function, source line)."""
    frames = []
    for entry in excinfo.traceback:
        # The one line, from linecache: pytest's whole-statement lookup parses each
        # frame's module, which for a hundred failures deep in a library takes minutes.
        source = linecache.getline(str(entry.path), entry.lineno + 1).strip()
        frames.append(
            {"path": str(entry.path), "line": entry.lineno + 1, "name": entry.name, "code": source}
        )
    exception = excinfo.value
    return {
        "type": type(exception).__name__,
        "message": excinfo.exconly()[:MAX_MESSAGE_CHARS],
        # What an ImportError names: the module, and (3.12+) the missing name.
        "module": getattr(exception, "name", None) if isinstance(exception, ImportError) else None,
        "frames": frames,
    }


def task_ids(item: pytest.Item) -> list[str]:
    """The ids of a test's task markers, its own (and its parameter's) first."""
    return [str(mark.args[0]) for mark in item.iter_markers("task") if mark.args]


def source_of(item: pytest.Item) -> str:
    """The test function's source, for an editor to show beside its result."""
    function = getattr(item, "function", None)
    try:
        return inspect.getsource(function) if function is not None else ""
    except (OSError, TypeError):
        return ""


class Recorder:
    """Collects the tests and their results, and writes them when the session ends."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.tests: dict[str, dict[str, Any]] = {}
        self.collection_errors: list[dict[str, Any]] = []

    def pytest_collection_modifyitems(
        self, config: pytest.Config, items: list[pytest.Item]
    ) -> None:
        """Note every collected test with its task markers, keeping only the asked tasks."""
        wanted = config.getoption("--tasks-only")
        if wanted:
            ids = set(wanted.split(","))
            kept = [item for item in items if ids & set(task_ids(item))]
            config.hook.pytest_deselected(items=[item for item in items if item not in kept])
            items[:] = kept
        for item in items:
            tasks = task_ids(item)
            self.tests[item.nodeid] = {
                "nodeid": item.nodeid,
                "name": item.name,
                "tasks": tasks,
                "outcome": "not run",
                "duration": 0.0,
                "failure": None,
                "output": "",
                "code": source_of(item),
            }

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        """Keep the worst outcome over setup, call and teardown."""
        test = self.tests.get(report.nodeid)
        if test is None:
            return
        test["duration"] += report.duration
        if report.failed:
            test["outcome"] = "failed" if report.when == "call" else "error"
            test["output"] = (report.capstdout + report.capstderr)[-MAX_MESSAGE_CHARS:]
        elif report.skipped and test["outcome"] in {"not run", "passed"}:
            test["outcome"] = "skipped"
        elif report.passed and report.when == "call" and test["outcome"] == "not run":
            test["outcome"] = "passed"

    def pytest_exception_interact(
        self,
        node: pytest.Item | pytest.Collector,
        call: pytest.CallInfo[Any],
        report: pytest.CollectReport | pytest.TestReport,
    ) -> None:
        """Keep the first exception of each failing test, and every collection error."""
        if call.excinfo is None:
            return
        if isinstance(report, pytest.CollectReport):
            self.collection_errors.append(
                {"nodeid": report.nodeid, "path": str(node.path), **failure_of(call.excinfo)}
            )
            return
        test = self.tests.get(report.nodeid)
        if test is not None and test["failure"] is None:
            test["failure"] = {"when": report.when, **failure_of(call.excinfo)}

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        """Write the report."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(
            json.dumps(
                {
                    "rootdir": str(session.config.rootpath),
                    "tests": list(self.tests.values()),
                    "collection_errors": self.collection_errors,
                },
                indent=1,
            ),
            encoding="utf-8",
        )
