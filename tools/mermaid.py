"""Install mermaid.js for the docs site, so its diagrams render with no CDN.

mkdocs-material loads mermaid from a CDN unless the page already has it: a
learner offline, or behind a proxy, would see the diagrams as raw text. No
PyPI package ships mermaid's script, so this takes it from mermaid's own npm
package, once, with the machine's npm: `npm pack` fetches the release tarball
(about 14 MB) and only `dist/mermaid.min.js` (about 3 MB) is kept, under
`.workshop/mermaid/`. Where npm is missing it says so in one line and the
site builds anyway, its diagrams as text.

As a mkdocs hook (`hooks:` in mkdocs.yml) it adds the installed script to the
site; `python tools/mermaid.py` installs it (the docs and browser sessions run
that: install time, never while a page is served). Only the standard library.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# The major version mkdocs-material asks its CDN for; pinned, so every build is the same.
VERSION = "11.17.2"
INSTALLED = ROOT / ".workshop" / "mermaid" / VERSION / "mermaid.min.js"
SITE_PATH = "assets/javascripts/mermaid.min.js"
MEMBER = "package/dist/mermaid.min.js"
HOW_TO_GET_IT = (
    "mermaid.js is not installed, so the docs' diagrams show as text: install Node.js "
    "(with npm) and run `./workshop -s docs` once to fetch it."
)


class MermaidUnavailableError(RuntimeError):
    """npm is missing or could not fetch mermaid."""


def install() -> Path:
    """Return the installed mermaid.min.js, fetching it with npm the first time."""
    if INSTALLED.is_file():
        return INSTALLED
    npm = shutil.which("npm")
    if npm is None:
        raise MermaidUnavailableError(HOW_TO_GET_IT)
    with tempfile.TemporaryDirectory() as scratch:
        result = subprocess.run(
            [npm, "pack", f"mermaid@{VERSION}", "--pack-destination", scratch, "--silent"],
            capture_output=True,
            text=True,
            check=False,
            timeout=300,
        )
        tarballs = list(Path(scratch).glob("mermaid-*.tgz"))
        if result.returncode != 0 or not tarballs:
            last_line = (result.stderr.strip().splitlines() or ["no output"])[-1]
            raise MermaidUnavailableError(
                f"npm could not fetch mermaid@{VERSION} ({last_line}); the diagrams show as text."
            )
        with tarfile.open(tarballs[0]) as archive:
            member = archive.extractfile(MEMBER)
            if member is None:
                raise MermaidUnavailableError(f"mermaid@{VERSION}'s package has no {MEMBER}.")
            script = member.read()
    INSTALLED.parent.mkdir(parents=True, exist_ok=True)
    partial = INSTALLED.with_suffix(".partial")
    partial.write_bytes(script)
    partial.replace(INSTALLED)  # whole or not at all: an interrupted fetch leaves nothing
    return INSTALLED


# --- the mkdocs hook ----------------------------------------------------------


def on_config(config: Any) -> Any:
    """Load the installed mermaid before the theme looks for it (then it skips its CDN)."""
    if INSTALLED.is_file():
        if SITE_PATH not in [str(script) for script in config.extra_javascript]:
            config.extra_javascript.insert(0, SITE_PATH)
    else:
        # Not a warning: `mkdocs build --strict` would fail on a machine without npm.
        print(f"INFO    -  {HOW_TO_GET_IT}", file=sys.stderr)
    return config


def on_files(files: Any, config: Any) -> Any:
    """Add the installed script to the site's files."""
    from mkdocs.structure.files import File  # the hook runs inside mkdocs only

    if INSTALLED.is_file():
        files.append(File.generated(config, SITE_PATH, abs_src_path=str(INSTALLED)))
    return files


def main() -> int:
    """Install mermaid.js; exit 1 only if --required and it cannot be had."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--required", action="store_true", help="fail if it cannot be had")
    args = parser.parse_args()
    try:
        path = install()
    except (MermaidUnavailableError, OSError, subprocess.SubprocessError) as error:
        print(f"mermaid: {error}", file=sys.stderr)
        return 1 if args.required else 0
    print(f"mermaid: {VERSION} at {path.relative_to(ROOT)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
