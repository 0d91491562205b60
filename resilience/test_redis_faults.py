"""Redis killed under load and Redis frozen: the service degrades, never fails."""

import asyncio
import uuid
from typing import Any

import httpx
from harness.api import bearer, create_user, login_tokens, new_email, signup
from harness.database import committed_emails
from harness.launcher import Launcher
from harness.metrics import redis_failures
from harness.service import Service
from harness.traffic import Outcome, run_load, send

CLIENTS = 8
CLIENT_TIMEOUT_SECONDS = 15.0
# final/app/cache.py: "v{CACHE_VERSION}:user:{id}" holds a user's public JSON.
CACHE_KEY = "v1:user:{}"


async def _signed_in_users(client: httpx.AsyncClient, count: int) -> list[dict[str, Any]]:
    """`count` users, each with its id and a bearer header."""
    users = []
    for n in range(count):
        user = await create_user(client, f"redisload{n}")
        tokens = await login_tokens(client, user["email"])
        users.append({"id": user["id"], "headers": bearer(tokens)})
    return users


async def _wait_for_readiness(client: httpx.AsyncClient, status: str, *, polls: int = 100) -> None:
    """Poll /health/ready (at most `polls` times, 0.1 s apart) until it reports `status`."""
    seen = None
    for _ in range(polls):
        response = await client.get("/health/ready")
        seen = response.status_code, response.text
        if response.status_code == 200 and response.json().get("status") == status:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"/health/ready never reported {status!r}; last answer: {seen}")


def _mixed_step(client: httpx.AsyncClient, users: list[dict[str, Any]]) -> Any:
    async def step(n: int) -> Outcome:
        user = users[n % len(users)]
        if n % 3 == 0:
            email = new_email(f"redisload-w{n}")
            return await send("POST /api/v1/users", signup(client, email), email=email)
        if n % 3 == 1:
            return await send("GET /me", client.get("/api/v1/users/me", headers=user["headers"]))
        path = f"/api/v1/users/{user['id']}"
        return await send("GET /users/{id}", client.get(path, headers=user["headers"]))

    return step


async def test_redis_killed_and_restarted_under_load_loses_no_write_and_serves_no_5xx(
    launch: Launcher,
) -> None:
    redis_server = await launch.redis()
    service: Service = await launch.service(redis_url=redis_server.url)
    stop = asyncio.Event()
    async with service.client(timeout=CLIENT_TIMEOUT_SECONDS) as client:
        users = await _signed_in_users(client, CLIENTS)
        await _wait_for_readiness(client, "ok")
        load = asyncio.create_task(
            run_load(
                _mixed_step(client, users),
                clients=CLIENTS,
                max_requests=400,
                max_seconds=60,
                stop=stop,
            )
        )
        try:
            await asyncio.sleep(0.5)
            redis_server.kill()
            await redis_server.wait_dead()
            # Redis gone: still ready (200), but degraded.
            await _wait_for_readiness(client, "degraded")
            await asyncio.sleep(0.5)
        finally:
            # Undo the fault whatever happened above.
            if not redis_server.owned or not redis_server.owned.is_alive():
                await redis_server.start()
        try:
            await _wait_for_readiness(client, "ok")
            await asyncio.sleep(0.5)
        finally:
            stop.set()
            outcomes = await load

        bad = [o.describe() for o in outcomes if o.status not in (200, 201)]
        assert not bad, bad
        created = {o.email for o in outcomes if o.status == 201 and o.email}
        assert created, "No write succeeded during the load."
        committed = await committed_emails(launch.db_url, created)
        assert created <= committed, sorted(created - committed)

        # The cache fills again from PostgreSQL: a read puts the user back in Redis.
        user = users[0]
        for _ in range(2):
            read = await client.get(f"/api/v1/users/{user['id']}", headers=user["headers"])
            assert read.status_code == 200, read.text
    redis_client = redis_server.client()
    try:
        assert await redis_client.exists(CACHE_KEY.format(uuid.UUID(user["id"])))
    finally:
        await redis_client.aclose()


async def test_redis_paused_beyond_socket_timeout_still_answers_and_counts_failures(
    launch: Launcher,
) -> None:
    redis_server = await launch.redis()
    service = await launch.service(redis_url=redis_server.url)
    async with service.client(timeout=CLIENT_TIMEOUT_SECONDS) as client:
        users = await _signed_in_users(client, 2)
        before = await redis_failures(client)
        outcomes: list[Outcome] = []
        redis_server.pause()
        try:
            # Sequential and few: each request waits out one socket timeout at most.
            for n in range(6):
                outcomes.append(await _mixed_step(client, users)(n))
            ready = await client.get("/health/ready")
        finally:
            redis_server.resume()
        after = await redis_failures(client)

    bad = [o.describe() for o in outcomes if o.status not in (200, 201)]
    assert not bad, bad
    assert ready.status_code == 200, ready.text
    assert ready.json()["checks"]["redis"] == "unavailable", ready.text
    assert after > before, f"Redis failure counters did not rise: {before} -> {after}"
