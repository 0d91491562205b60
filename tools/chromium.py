"""Find a Chromium for the browser tests; never download one (Playwright's download needs internet).

In order: WORKSHOP_CHROMIUM (a path), the system's (Debian's `chromium` package
and its relatives on PATH), then one that `playwright install chromium` put in
its cache. Only the standard library: this runs in the Python that runs nox.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

ON_PATH = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
HOW_TO_GET_ONE = (
    "no Chromium found, so the browser tests do not run: install one "
    "(Debian or Ubuntu: `sudo apt-get install chromium`), or set WORKSHOP_CHROMIUM to its path."
)


def _playwright_cache() -> Path:
    configured = os.environ.get("PLAYWRIGHT_BROWSERS_PATH")
    if configured and configured != "0":
        return Path(configured)
    return Path.home() / ".cache" / "ms-playwright"


def find_chromium() -> str | None:
    """Return the path of a Chromium to launch, or None."""
    configured = os.environ.get("WORKSHOP_CHROMIUM")
    if configured:
        return configured if os.access(configured, os.X_OK) else None
    for name in ON_PATH:
        found = shutil.which(name)
        if found:
            return found
    installed = sorted(_playwright_cache().glob("chromium-*/chrome-linux*/chrome"))
    return str(installed[-1]) if installed else None
