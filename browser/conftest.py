"""Fixtures: the machine's Chromium driven by Playwright, a served final/, the built docs site."""

from __future__ import annotations

import functools
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.error import URLError
from urllib.request import urlopen

import pytest
from playwright.sync_api import Browser, BrowserContext, Playwright, sync_playwright
from watch import keep_offline

ROOT = Path(__file__).resolve().parent.parent
FINAL = ROOT / "final"
# Headless, and nothing that talks to the network on its own: no update checks,
# no sync, no first-run pages. --no-sandbox: CI runs as root, where the sandbox cannot.
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
# Material renders each diagram into a closed shadow root; opened, a test can look inside.
OPEN_SHADOW_ROOTS = """
const attachShadow = Element.prototype.attachShadow;
Element.prototype.attachShadow = function (init) {
  return attachShadow.call(this, { ...init, mode: "open" });
};
"""


def _required(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        pytest.fail(f"{name} is not set: run this suite through `./workshop -s browser`.")
    return value


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def wait_until_answers(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"final/ exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urlopen(url, timeout=2):  # noqa: S310 (a URL of ours, on 127.0.0.1)
                return
        except (URLError, OSError):
            time.sleep(0.25)
    pytest.fail(f"final/ did not answer {url} within 60 s:\n{log.read_text()[-3000:]}")


@pytest.fixture(scope="session")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="session")
def browser(playwright: Playwright) -> Iterator[Browser]:
    """The machine's Chromium, launched by path: Playwright's own download is never used."""
    chromium = playwright.chromium.launch(
        executable_path=_required("WORKSHOP_CHROMIUM"), args=CHROMIUM_FLAGS, headless=True
    )
    yield chromium
    chromium.close()


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    """A fresh profile per test, offline but for this machine."""
    profile = browser.new_context(viewport={"width": 1280, "height": 900})
    profile.route("**/*", keep_offline)
    profile.add_init_script(OPEN_SHADOW_ROOTS)
    yield profile
    profile.close()


@pytest.fixture(scope="session")
def service_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """final/ under uvicorn on 127.0.0.1, on a database the fixture creates and migrates."""
    env = {
        **os.environ,
        "DATABASE_URL": _required("DATABASE_URL"),
        "REDIS_URL": _required("REDIS_URL"),
        "ENVIRONMENT": "development",
        "LOG_LEVEL": "WARNING",
    }
    python = sys.executable
    subprocess.run([python, str(ROOT / "tools" / "create_database.py")], env=env, check=True)
    subprocess.run([python, "-m", "alembic", "upgrade", "head"], cwd=FINAL, env=env, check=True)
    port = free_port()
    log = tmp_path_factory.mktemp("final") / "uvicorn.log"
    with log.open("wb") as output:
        server = subprocess.Popen(
            [python, "-m", "uvicorn", "app.main:app", "--host", "127.0.0.1", "--port", str(port)],
            cwd=FINAL,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_answers(f"{url}/health/live", server, log)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


def serve_directory(directory: Path) -> tuple[ThreadingHTTPServer, str]:
    """Serve a directory over HTTP on 127.0.0.1, from a thread; return the server and its URL."""
    handler = functools.partial(_QuietHandler, directory=str(directory))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


@pytest.fixture(scope="session")
def site() -> Path:
    """The docs site, built by the nox session with `mkdocs build --strict`."""
    path = Path(_required("WORKSHOP_SITE"))
    if not (path / "index.html").is_file():
        pytest.fail(f"No built site in {path}: run this suite through `./workshop -s browser`.")
    return path


@pytest.fixture(scope="session")
def site_url(site: Path) -> Iterator[str]:
    server, url = serve_directory(site)
    yield url
    server.shutdown()
    server.server_close()
