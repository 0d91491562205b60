"""Create the PostgreSQL database named in DATABASE_URL if it does not exist yet.

Run inside a project's environment (it needs asyncpg): `nox -s serve` calls it
before `alembic upgrade head`, which needs the database to exist. With
`--recreate` it drops the database first, so that it starts empty.
"""

from __future__ import annotations

import asyncio
import os
import sys
from urllib.parse import urlsplit, urlunsplit

import asyncpg


async def create_database(url: str, *, recreate: bool = False) -> bool:
    """Create the URL's database unless it exists (drop it first if told); return if created."""
    parts = urlsplit(url.replace("postgresql+asyncpg://", "postgresql://", 1))
    name = parts.path.lstrip("/")
    # CREATE DATABASE cannot run inside the database it creates: connect to the
    # maintenance database on the same server instead.
    maintenance = urlunsplit(parts._replace(path="/postgres"))
    connection = await asyncpg.connect(maintenance, timeout=10)
    try:
        # Identifiers cannot be bound as parameters; quote it as PostgreSQL does.
        quoted = '"' + name.replace('"', '""') + '"'
        if recreate:
            # WITH (FORCE): a server left running by an interrupted run may hold a connection.
            await connection.execute(f"DROP DATABASE IF EXISTS {quoted} WITH (FORCE)")
        exists = await connection.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if exists:
            return False
        await connection.execute(f"CREATE DATABASE {quoted}")
        return True
    finally:
        await connection.close()


def main() -> int:
    """Create the database from DATABASE_URL and say what happened."""
    url = os.environ.get("DATABASE_URL")
    if not url:
        print("Set DATABASE_URL to the database to create.", file=sys.stderr)
        return 2
    created = asyncio.run(create_database(url, recreate="--recreate" in sys.argv[1:]))
    name = urlsplit(url).path.lstrip("/")
    print(f"database {name}: {'created' if created else 'already there'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
