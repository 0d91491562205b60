"""A pytest plugin that keeps a copy of what pytest prints, for a step run's record.

The step session loads it (PYTEST_PLUGINS=workshop_transcript, with
WORKSHOP_TRANSCRIPT naming the file) so that the record of a passed run
(tools/step_runs.py) holds what the run printed, and a page's promised output
can be checked against it. It copies the terminal reporter's writes as
pytest's own pastebin plugin does; it needs nothing but pytest.
"""

from __future__ import annotations

import os
from typing import Any

import pytest


@pytest.hookimpl(trylast=True)
def pytest_configure(config: pytest.Config) -> None:
    """Copy every write of the terminal reporter into WORKSHOP_TRANSCRIPT's file."""
    # Popped: a pytest that a test starts in a subprocess keeps no copy over this one.
    path = os.environ.pop("WORKSHOP_TRANSCRIPT", None)
    reporter = config.pluginmanager.getplugin("terminalreporter")
    if not path or reporter is None:
        return
    copy = open(path, "w", encoding="utf-8")  # noqa: SIM115 (closed at pytest's cleanup)
    config.add_cleanup(copy.close)
    write = reporter._tw.write

    def write_and_copy(text: str, **markup: Any) -> None:
        write(text, **markup)
        copy.write(text)

    reporter._tw.write = write_and_copy
