"""CPU time of one user read from PostgreSQL, per way of reading it, apart from HTTP.

The cache-miss path is mostly this read (docs/performance.md), so it is
measured on its own: final/'s engine (its pool, pre-ping and statement
timeout), one read after another, the variants taking turns, the best
batch's process CPU time per read. `python bench/run.py --profile --only
me_uncached` runs it against the benchmark's database after the profile.
"""

from __future__ import annotations

import asyncio
import importlib
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

FINAL = Path(__file__).resolve().parent.parent / "final"
READS = 500
ROUNDS = 9


def _final(module: str) -> Any:
    """One of final/'s modules, imported by name (mypy checks them in final/)."""
    if str(FINAL) not in sys.path:
        sys.path.insert(0, str(FINAL))
    return importlib.import_module(module)


async def _batch(read: Callable[[], Awaitable[object]]) -> float:
    started = time.process_time()
    for _ in range(READS):
        if await read() is None:
            raise RuntimeError("The benchmark user was not found.")
    return (time.process_time() - started) / READS


async def measure(database_url: str) -> dict[str, float]:
    """Return the best batch's CPU seconds per read of every variant."""
    config, db = _final("app.config"), _final("app.db")
    models, repository = _final("app.models"), _final("app.repository")
    settings = config.Settings(database_url=database_url, _env_file=None)
    engine = db.create_engine(settings)
    sessions = db.create_sessionmaker(engine)
    user = models.User
    async with engine.connect() as connection:
        user_id: uuid.UUID = (await connection.execute(text("SELECT id FROM users LIMIT 1"))).one()[
            0
        ]
    columns = select(*repository._COLUMNS).where(user.id == user_id)

    async def orm_get() -> object:
        session: AsyncSession
        async with sessions() as session:
            return await session.get(user, user_id)

    async def repository_get() -> object:
        async with sessions() as session:
            return await repository.UserRepository(session).get(user_id)

    async def core_on_connection() -> object:
        connection: AsyncConnection
        async with engine.connect() as connection:
            return (await connection.execute(columns)).first()

    async def asyncpg_on_pooled_connection() -> object:
        async with engine.connect() as connection:
            raw = await connection.get_raw_connection()
            driver = raw.driver_connection
            assert driver is not None
            return await driver.fetchrow(
                "SELECT id, email, full_name, password_hash, is_active, is_admin, created_at,"
                " updated_at FROM users WHERE id = $1",
                user_id,
            )

    variants: dict[str, Callable[[], Awaitable[object]]] = {
        "ORM: session.get(User, id)": orm_get,
        "final/: UserRepository.get, a Core select of the columns in a session": repository_get,
        "Core select of the columns on a pooled connection, no session": core_on_connection,
        "asyncpg fetchrow on a pooled connection (no SQLAlchemy statement)": (
            asyncpg_on_pooled_connection
        ),
    }
    try:
        for read in variants.values():
            await _batch(read)  # warm the pool and the statement caches
        best = dict.fromkeys(variants, float("inf"))
        for _ in range(ROUNDS):
            for name, read in variants.items():
                best[name] = min(best[name], await _batch(read))
    finally:
        await engine.dispose()
    return best


def print_reads(database_url: str) -> None:
    """Measure and print the reads."""
    best = asyncio.run(measure(database_url))
    print(f"\nOne user read, CPU µs per read, best of {ROUNDS} batches of {READS}, taking turns:")
    for name, seconds in best.items():
        print(f"{seconds * 1e6:7.0f}  {name}")
