"""Prepare final/ for a benchmark: a fresh database, an empty Redis db, users and tokens."""

from __future__ import annotations

import asyncio
import secrets
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode, urlsplit, urlunsplit

import asyncpg
import httpx
from redis import Redis

BENCH_DATABASE = "workshop_bench"
BENCH_REDIS_DB = 12
USER_EMAIL = "bench-user@example.com"
ADMIN_EMAIL = "bench-admin@example.com"
# High enough never to refuse a benchmark request: the read cases measure
# capacity, and the login cases measure hashing, not the limiter.
UNLIMITED = "1000000/second"


class SetupError(Exception):
    """final/ could not be prepared; the message says which step failed."""


def bench_database_url(base: str) -> str:
    """Return `base` pointed at the benchmark database, whatever database it named."""
    # Always workshop_bench: the runner drops and recreates it, so it must
    # never be a database someone cares about.
    return urlunsplit(urlsplit(base)._replace(path=f"/{BENCH_DATABASE}"))


def bench_redis_url(base: str) -> str:
    """Return `base` pointed at the benchmark's Redis database number."""
    return urlunsplit(urlsplit(base)._replace(path=f"/{BENCH_REDIS_DB}"))


def final_environment(database_url: str, redis_url: str, secret_key: str) -> dict[str, str]:
    """Return the settings final/ runs with during the benchmark (production mode)."""
    return {
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "SECRET_KEY": secret_key,
        "ENVIRONMENT": "production",
        "RATE_LIMIT": UNLIMITED,
        "LOGIN_RATE_LIMIT": UNLIMITED,
        # Outlives the longest run, so no token expires mid-measurement.
        "ACCESS_TOKEN_TTL_SECONDS": "3600",
    }


def reset_stores(database_url: str, redis_url: str) -> None:
    """Drop and recreate the benchmark database and empty the benchmark's Redis db."""
    asyncio.run(_recreate_database(database_url))
    with Redis.from_url(redis_url) as redis:
        # Stale sessions or cached users from an earlier run would skew the first round.
        redis.flushdb()


async def _recreate_database(url: str) -> None:
    parts = urlsplit(url.replace("postgresql+asyncpg://", "postgresql://", 1))
    name = parts.path.lstrip("/")
    if name != BENCH_DATABASE:
        raise SetupError(f"Refusing to recreate database {name!r}: only {BENCH_DATABASE} is ours.")
    # DROP and CREATE DATABASE cannot run inside the database itself.
    maintenance = urlunsplit(parts._replace(path="/postgres"))
    try:
        connection = await asyncpg.connect(maintenance, timeout=10)
    except (OSError, asyncpg.PostgresError) as exc:
        raise SetupError(
            f"PostgreSQL is not answering ({exc}): start it, or use `nox -s bench`."
        ) from None
    try:
        # FORCE: a server left over from an interrupted run may still hold connections.
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()


def migrate(final_dir: Path, env: dict[str, str]) -> None:
    """Run `alembic upgrade head` in final/."""
    _run_in_final(final_dir, env, ["-m", "alembic", "upgrade", "head"], "alembic upgrade head")


def create_admin(final_dir: Path, env: dict[str, str], password: str) -> None:
    """Create the admin with final/'s command line, the password on standard input."""
    arguments = ["-m", "app", "create-admin", "--email", ADMIN_EMAIL]
    _run_in_final(final_dir, env, arguments, "python -m app create-admin", stdin=password + "\n")


def _run_in_final(
    final_dir: Path, env: dict[str, str], arguments: list[str], what: str, stdin: str = ""
) -> None:
    result = subprocess.run(  # noqa: S603
        [sys.executable, *arguments],
        cwd=final_dir,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        # The last line is the error itself (the exception, or the command's message).
        lines = (result.stdout + result.stderr).strip().splitlines() or ["no output"]
        raise SetupError(f"`{what}` failed with code {result.returncode}: {lines[-1].strip()}")


@dataclass
class Seed:
    """What the scenarios need from final/, or why each piece is missing."""

    user_password: str
    user_token: str | None = None
    admin_token: str | None = None
    user_id: str | None = None
    problems: dict[str, str] = field(default_factory=dict)

    def login_form(self) -> str:
        """Return the urlencoded login body for the benchmark user."""
        return urlencode({"username": USER_EMAIL, "password": self.user_password})


def seed_over_http(base_url: str, *, admin_password: str) -> Seed:
    """Create the benchmark user through the API and log both users in."""
    seed = Seed(user_password=secrets.token_urlsafe(16))
    try:
        _seed(seed, base_url, admin_password)
    except httpx.HTTPError as exc:
        seed.problems.setdefault("user", f"Seeding over HTTP failed: {exc}")
    return seed


def _seed(seed: Seed, base_url: str, admin_password: str) -> None:
    with httpx.Client(base_url=base_url, timeout=30.0) as client:
        created = client.post(
            "/api/v1/users",
            json={"email": USER_EMAIL, "password": seed.user_password, "full_name": "Bench User"},
        )
        if created.status_code == 201:
            seed.user_id = created.json()["id"]
        else:
            seed.problems["user"] = describe_answer("POST /api/v1/users", created)
        seed.user_token = _login(client, USER_EMAIL, seed.user_password, seed.problems, "user")
        seed.admin_token = _login(client, ADMIN_EMAIL, admin_password, seed.problems, "admin")


def _login(
    client: httpx.Client, email: str, password: str, problems: dict[str, str], who: str
) -> str | None:
    answer = client.post("/api/v1/auth/token", data={"username": email, "password": password})
    if answer.status_code == 200:
        token: str = answer.json()["access_token"]
        return token
    problems[who + "_token"] = describe_answer("POST /api/v1/auth/token", answer)
    return None


def describe_answer(request: str, answer: httpx.Response) -> str:
    """Say in one line what a request got, with the problem's detail when there is one."""
    detail = ""
    if answer.headers.get("content-type", "").endswith("json"):
        body = answer.json()
        if isinstance(body, dict):
            detail = str(body.get("detail") or body.get("title") or "")
    return f"{request} answered {answer.status_code}" + (f": {detail}" if detail else "")
