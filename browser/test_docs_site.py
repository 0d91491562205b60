"""Every page of the built docs site, opened offline: no error, every diagram drawn, no hole."""

from __future__ import annotations

import contextlib
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import serve_directory
from playwright.sync_api import BrowserContext, Page
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError
from watch import PageWatch

DIAGRAM_SECONDS = 15_000
# The page that teaches the include syntax shows it, escaped, on purpose.
SHOWS_INCLUDE_SYNTAX = {"/contributing/step-pages/"}
ARTICLE = "article.md-content__inner"
ARTICLE_START = '<article class="md-content__inner md-typeset">'

# Each diagram: drawn (an <svg> in its shadow root) and not mermaid's error picture.
DIAGRAMS = """() => [...document.querySelectorAll('.mermaid')].map((element) => {
  const svg = element.shadowRoot ? element.shadowRoot.querySelector('svg') : null;
  if (!svg) return element.tagName === 'PRE' ? 'not drawn (still text)' : 'not drawn';
  if (svg.getAttribute('aria-roledescription') === 'error') return 'mermaid could not parse it';
  return svg.getBoundingClientRect().height >= 60 ? 'ok' : 'drawn too small to read';
})"""


def pages_of(site: Path) -> list[str]:
    """Every page of a built site, as its URL path."""
    return sorted(
        "/" + path.parent.relative_to(site).as_posix().removeprefix(".") + "/"
        if path.parent != site
        else "/"
        for path in site.rglob("index.html")
    )


def page_problems(page: Page, url: str, expected_diagrams: int, path: str) -> list[str]:
    """Open a page and return what is wrong with it."""
    watch = PageWatch(page)
    page.goto(url)
    page.wait_for_load_state("load")
    problems: list[str] = []
    if expected_diagrams:
        # Not drawn in time: reported below, diagram by diagram.
        with contextlib.suppress(PlaywrightTimeoutError):
            page.wait_for_function(
                "() => [...document.querySelectorAll('.mermaid')]"
                ".every((e) => e.shadowRoot && e.shadowRoot.querySelector('svg'))",
                timeout=DIAGRAM_SECONDS,
            )
    states = page.evaluate(DIAGRAMS)
    if len(states) != expected_diagrams:
        problems.append(f"{len(states)} diagrams on the page, {expected_diagrams} in its HTML")
    problems += [f"diagram {n}: {state}" for n, state in enumerate(states, 1) if state != "ok"]
    # A hole where an include should be: an empty code block, or the include line itself.
    empty = page.locator(f"{ARTICLE} pre code").evaluate_all(
        "(blocks) => blocks.filter((block) => !block.textContent.trim()).length"
    )
    if empty:
        problems.append(f"{empty} empty code block(s): an include brought nothing")
    if path not in SHOWS_INCLUDE_SYNTAX and "--8<--" in page.locator(ARTICLE).inner_text():
        problems.append("an include was not resolved: the page shows a --8<-- line")
    return [*watch.problems, *problems]


def diagrams_in(html_file: Path) -> int:
    return len(re.findall(r'class="mermaid"', html_file.read_text(encoding="utf-8")))


def html_of(site: Path, page_path: str) -> Path:
    return site / page_path.lstrip("/") / "index.html"


def test_every_page_opens_cleanly_offline(
    context: BrowserContext, site: Path, site_url: str
) -> None:
    paths = pages_of(site)
    assert len(paths) >= 10, paths
    problems: dict[str, list[str]] = {}
    drawn = 0
    for path in paths:
        expected = diagrams_in(html_of(site, path))
        page = context.new_page()
        found = page_problems(page, f"{site_url}{path}", expected, path)
        page.close()
        if found:
            problems[path] = found
        drawn += expected
    assert not problems, "\n".join(
        f"{path}: {'; '.join(lines)}" for path, lines in problems.items()
    )
    assert drawn >= 4, "the site's diagrams were not found"


def test_the_step_02_middleware_chain_reads_top_to_bottom(
    context: BrowserContext, site_url: str
) -> None:
    page = context.new_page()
    page.goto(f"{site_url}/steps/02_app/")
    page.wait_for_function(
        "() => document.querySelector('.mermaid')?.shadowRoot?.querySelector('svg')"
    )
    box = page.evaluate(
        "() => document.querySelector('.mermaid').shadowRoot.querySelector('svg')"
        ".getBoundingClientRect().toJSON()"
    )
    # Eight boxes in a row were 38 px high; one above the other, they are taller than wide.
    assert box["height"] > box["width"], box


def _break_the_diagram(html: str) -> str:
    return html.replace("flowchart TB", "flowchart TB\n    ]]] broken [[[", 1)


def _leave_an_include_line(html: str) -> str:
    return html.replace(ARTICLE_START, ARTICLE_START + '<p>--8<-- "missing.py"</p>', 1)


def _leave_an_empty_include(html: str) -> str:
    return html.replace(ARTICLE_START, ARTICLE_START + "<pre><code></code></pre>", 1)


@pytest.mark.parametrize(
    ("damage", "reported"),
    [
        (_break_the_diagram, "diagram 1"),
        (_leave_an_include_line, "--8<--"),
        (_leave_an_empty_include, "empty code block"),
    ],
    ids=["broken-diagram", "include-line-left", "empty-include"],
)
def test_the_check_reports_a_damaged_page(
    context: BrowserContext,
    site: Path,
    tmp_path: Path,
    damage: Callable[[str], str],
    reported: str,
) -> None:
    # A copy of the site with one page damaged: the check above must see it.
    copy = tmp_path / "site"
    shutil.copytree(site, copy)
    html = html_of(copy, "/steps/02_app/")
    html.write_text(damage(html.read_text(encoding="utf-8")), encoding="utf-8")
    server, url = serve_directory(copy)
    try:
        page = context.new_page()
        problems = page_problems(page, f"{url}/steps/02_app/", diagrams_in(html), "/steps/02_app/")
    finally:
        server.shutdown()
        server.server_close()
    assert any(reported in line for line in problems), problems
