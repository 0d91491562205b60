"""Password hashing: Argon2id through pwdlib, on worker threads, off the event loop."""

import asyncio
import contextlib
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher

from app.config import Settings

T = TypeVar("T")


def _lower_thread_priority() -> None:
    """Run this hashing thread (and the lane threads it starts) at a lower CPU priority.

    On Linux a thread's nice value is its own: the event loop thread then gets
    a core first whenever it has work, so a burst of sign-ups does not add
    latency to every other request.
    """
    with contextlib.suppress(AttributeError, OSError):  # not Linux, or not permitted
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)


# The threads that run the hashes, shared by every hasher in the process: one
# per core, since more hashes at once would not finish any sooner.
_hashing_threads = ThreadPoolExecutor(
    max_workers=os.cpu_count() or 2,
    thread_name_prefix="password-hash",
    initializer=_lower_thread_priority,
)


class PasswordHasher:
    """Argon2id through pwdlib, run on worker threads so the event loop never waits for it."""

    def __init__(self, settings: Settings) -> None:
        self._hash = PasswordHash(
            (
                Argon2Hasher(
                    time_cost=settings.argon2_time_cost,
                    memory_cost=settings.argon2_memory_kib,
                    parallelism=settings.argon2_parallelism,
                ),
            )
        )

    async def _run(self, function: Callable[..., T], *args: Any) -> T:
        # ~100 ms of CPU per hash: on the event loop, every other request would wait for it.
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(_hashing_threads, function, *args)

    async def hash(self, password: str) -> str:
        """Hash a password."""
        return await self._run(self._hash.hash, password)
