"""Password hashing with Argon2id, run off the event loop on a small dedicated thread pool."""

import asyncio
import contextlib
import os
import threading
from concurrent.futures import ThreadPoolExecutor

from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher

# pwdlib's Argon2 defaults (Argon2id, m=64 MiB, t=3, p=4): ~100 ms wall and
# ~140 ms of CPU per hash, on up to four threads of its own.
_password_hash = PasswordHash((Argon2Hasher(),))


def _lower_thread_priority() -> None:
    """Run this hashing thread (and the lane threads it starts) at a lower CPU priority.

    On Linux a thread's nice value is its own: the event loop thread then gets
    a core first whenever it has work, so a burst of sign-ups or logins does
    not add latency to every other request.
    """
    with contextlib.suppress(AttributeError, OSError):  # not Linux, or not permitted
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)


# Two hashes at a time: with four lanes each they already fill two cores, and
# more in parallel would not finish sooner. Further requests queue here.
_hashing_pool = ThreadPoolExecutor(
    max_workers=2, thread_name_prefix="password-hash", initializer=_lower_thread_priority
)


async def hash_password(password: str) -> str:
    """Hash a password off the event loop."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_hashing_pool, _password_hash.hash, password)


async def verify_password(password: str, password_hash: str) -> bool:
    """Check a password against its hash off the event loop."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_hashing_pool, _password_hash.verify, password, password_hash)
