"""Re-run the check whenever a file in work/ changes (polling where inotify does not reach)."""

from __future__ import annotations

from watchfiles import DefaultFilter
from watchfiles import watch as changes_in

from tools.learner.cli import Workshop, check

CLEAR_SCREEN = "\033[2J\033[H"


def watch(shop: Workshop, *, poll: bool = False) -> int:
    """Check now, then after every change, the last failures first; Ctrl-C stops."""
    shop.out(CLEAR_SCREEN)
    check(shop, failed_first=True)
    shop.out("\nWatching work/ (Ctrl-C stops).")
    try:
        # force_polling: WSL's Windows folders and mounted volumes send no inotify events.
        for _changes in changes_in(
            shop.work, watch_filter=DefaultFilter(), force_polling=poll or None
        ):
            shop.out(CLEAR_SCREEN)
            check(shop, failed_first=True)
            shop.out("\nWatching work/ (Ctrl-C stops).")
    except KeyboardInterrupt:
        return 0
    return 0
