"""What went wrong on a page while a test looked: console errors, failed or refused requests."""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlsplit

from playwright.sync_api import ConsoleMessage, Page, Request, Response, Route

LOCAL_HOSTS = {"127.0.0.1", "localhost"}


def keep_offline(route: Route) -> None:
    """Let requests to this machine through and refuse the rest, as a machine offline would."""
    if urlsplit(route.request.url).hostname in LOCAL_HOSTS:
        route.continue_()
    else:
        route.abort("internetdisconnected")


@dataclass
class PageWatch:
    """Collects what went wrong on a page; `expect` names the answers a test means to get."""

    page: Page
    problems: list[str] = field(default_factory=list)
    expected_statuses: set[int] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda error: self.problems.append(f"page error: {error}"))
        self.page.on("requestfailed", self._request_failed)
        self.page.on("response", self._response)

    def expect(self, *statuses: int) -> None:
        """Say that the page is meant to receive these error statuses (a 401 after logout)."""
        self.expected_statuses.update(statuses)

    def _console(self, message: ConsoleMessage) -> None:
        if message.type != "error":
            return
        # The browser also logs each error status it receives; those are judged by status.
        if message.text.startswith("Failed to load resource: the server responded with"):
            return
        self.problems.append(f"console error: {message.text}")

    def _request_failed(self, request: Request) -> None:
        self.problems.append(f"request failed: {request.url} ({request.failure})")

    def _response(self, response: Response) -> None:
        if response.status >= 400 and response.status not in self.expected_statuses:
            self.problems.append(f"HTTP {response.status}: {response.url}")

    def assert_clean(self) -> None:
        """Fail with everything that went wrong, if anything did."""
        assert not self.problems, "\n".join(self.problems)
