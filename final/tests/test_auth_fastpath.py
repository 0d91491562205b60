"""The token fast path in the app: no SQL when Redis vouches, and every revocation seen at once."""

import logging
import re
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import iter_route_contexts
from redis.asyncio import Redis
from sqlalchemy import event, func, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession, async_sessionmaker
from tests.conftest import (
    PASSWORD,
    TokenFactory,
    UserFactory,
    assert_problem,
    bearer,
    make_settings,
    open_client,
)
from tests.redis_fixtures import naming, redis_commands

from app.cache import user_key
from app.config import Settings
from app.deps import get_authenticated
from app.limit_policy import enforce_api_limit
from app.main import create_app
from app.models import AuthSession
from app.repository import SessionRepository
from app.schemas import Token
from app.security import create_access_token, hash_refresh_secret, new_refresh_secret
from app.session_markers import session_key

ME = "/api/v1/users/me"
AUTH = "/api/v1/auth"
USERS = "/api/v1/users"


def session_id_of(pair: Token) -> uuid.UUID:
    """The session a token pair belongs to (the refresh token's first half)."""
    return uuid.UUID(pair.refresh_token.split(".")[0])


def metric(text: str, series: str) -> float:
    """The value of one series in Prometheus text (0 when absent)."""
    match = re.search(rf"^{re.escape(series)} (\S+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


async def warm_marker(
    client: httpx.AsyncClient, redis: Redis, pair: Token, path: str = ME, status: int = 200
) -> bytes:
    """Make a request that checks the session in PostgreSQL and leaves its marker in Redis."""
    r = await client.get(path, headers=bearer(pair.access_token))
    assert r.status_code == status, r.text
    marker = await redis.get(session_key(session_id_of(pair)))
    assert marker is not None
    assert marker.startswith((b"user:", b"admin:")), marker
    return marker


# The test's sessions run inside savepoints of its transaction: those statements
# come from the fixture, not from the code under test.
_SAVEPOINTS = ("SAVEPOINT", "RELEASE SAVEPOINT", "ROLLBACK TO SAVEPOINT")


@pytest.fixture
def statements(connection: AsyncConnection) -> Iterator[list[str]]:
    """Every SQL statement sent on the test's connection, savepoints aside."""
    sent: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if not statement.startswith(_SAVEPOINTS):
            sent.append(statement)

    event.listen(connection.engine.sync_engine, "before_cursor_execute", record)
    yield sent
    event.remove(connection.engine.sync_engine, "before_cursor_execute", record)


# --- the fast path serves ------------------------------------------------------------


async def test_a_live_marker_and_a_cached_user_answer_get_me_without_any_sql(
    client: httpx.AsyncClient,
    sessionmaker: async_sessionmaker[AsyncSession],
    redis: Redis,
    user: UserFactory,
    token_pair: TokenFactory,
    statements: list[str],
) -> None:
    pair = await token_pair(await user())
    headers = bearer(pair.access_token)
    first = await client.get(ME, headers=headers)  # checks PostgreSQL, fills marker and cache
    assert first.status_code == 200, first.text
    statements.clear()

    cached = await client.get(ME, headers=headers)

    assert cached.status_code == 200, cached.text
    assert statements == []
    assert cached.content == first.content
    assert cached.headers["content-type"] == "application/json"
    async for uncached_client in open_client(
        create_app(make_settings(cache_enabled=False)), {"sessionmaker": sessionmaker}
    ):
        uncached = await uncached_client.get(ME, headers=headers)
    assert uncached.status_code == 200, uncached.text
    assert uncached.content == cached.content
    metrics = (await client.get("/metrics")).text
    assert metric(metrics, 'auth_checks_total{source="database"}') == 1
    assert metric(metrics, 'auth_checks_total{source="redis"}') == 1
    assert metric(metrics, "cache_hits_total") == 1
    assert metric(metrics, "cache_misses_total") == 1


async def test_an_admin_route_is_authorised_from_the_marker_alone(
    client: httpx.AsyncClient,
    redis: Redis,
    user: UserFactory,
    token_pair: TokenFactory,
    statements: list[str],
) -> None:
    admin = await user(is_admin=True)
    pair = await token_pair(admin)
    assert await warm_marker(client, redis, pair) == f"admin:{admin.id}".encode()
    statements.clear()

    r = await client.get(USERS, headers=bearer(pair.access_token))

    assert r.status_code == 200, r.text
    # The page itself is one query; the caller's session and role cost none.
    assert len(statements) == 1, statements
    assert "auth_sessions" not in statements[0]


async def test_the_marker_lives_no_longer_than_its_setting_or_its_session(
    client: httpx.AsyncClient,
    session: AsyncSession,
    settings: Settings,
    redis: Redis,
    user: UserFactory,
    token_pair: TokenFactory,
) -> None:
    owner = await user()
    long_lived = await token_pair(owner)
    await warm_marker(client, redis, long_lived)
    almost_over = await SessionRepository(session).create(
        user_id=owner.id,
        refresh_token_hash=hash_refresh_secret(new_refresh_secret()),
        ttl_seconds=5,
        user_agent=None,
        ip=None,
    )
    await session.commit()
    r = await client.get(ME, headers=bearer(create_access_token(settings, owner.id, almost_over)))
    assert r.status_code == 200, r.text

    assert 0 < await redis.ttl(session_key(session_id_of(long_lived))) <= 30
    assert 0 < await redis.ttl(session_key(almost_over)) <= 5


async def test_the_cached_user_the_token_check_read_is_not_read_again(
    client: httpx.AsyncClient, redis: Redis, user: UserFactory, token_pair: TokenFactory
) -> None:
    owner = await user()
    pair, new_session = await token_pair(owner), await token_pair(owner)
    first = await client.get(ME, headers=bearer(pair.access_token))  # fills marker and cache
    assert first.status_code == 200, first.text
    cache_key = user_key(str(owner.id))

    async with redis_commands(redis) as by_marker:
        marker_answer = await client.get(ME, headers=bearer(pair.access_token))
    # A session without a marker yet: PostgreSQL checks it, the user is cached already.
    async with redis_commands(redis) as by_postgresql:
        postgresql_answer = await client.get(ME, headers=bearer(new_session.access_token))

    for answer in (marker_answer, postgresql_answer):
        assert answer.status_code == 200, answer.text
        assert answer.content == first.content
    # The fast path's one script call read the user with the session: the route
    # serves those bytes, without a second round trip to Redis for the same key.
    assert naming(by_marker, cache_key) == ["EVALSHA"], by_marker
    assert naming(by_postgresql, cache_key) == ["EVALSHA"], by_postgresql


async def test_a_one_second_marker_ttl_still_writes_the_marker(
    sessionmaker: async_sessionmaker[AsyncSession],
    redis: Redis,
    user: UserFactory,
    token_pair: TokenFactory,
) -> None:
    owner = await user()
    pair = await token_pair(owner)
    app = create_app(make_settings(session_marker_ttl_seconds=1))

    async for client in open_client(app, {"sessionmaker": sessionmaker}):
        async with redis_commands(redis) as sent:
            r = await client.get(ME, headers=bearer(pair.access_token))

    assert r.status_code == 200, r.text
    # Read from what the app sent, not from Redis: a one-second marker may
    # already be gone by the time the test could look.
    key = session_key(session_id_of(pair))
    marker_writes = [c for c in sent if c.startswith(f"SET {key} ")]
    assert marker_writes == [f"SET {key} user:{owner.id} NX EX 1"], sent


async def test_a_session_in_its_last_second_is_served_but_never_marked(
    client: httpx.AsyncClient,
    session: AsyncSession,
    redis: Redis,
    user: UserFactory,
    token_pair: TokenFactory,
) -> None:
    pair = await token_pair(await user())
    session_id = session_id_of(pair)
    # PostgreSQL's now() is the start of the test's transaction: a session that
    # expires a millisecond after it is still live to PostgreSQL, while by this
    # process's clock it has less than a second left, however slow the machine.
    # So has a session checked in its last second, or on a host whose clock runs
    # ahead of the database's.
    await session.execute(
        update(AuthSession)
        .where(AuthSession.id == session_id)
        .values(expires_at=func.now() + timedelta(milliseconds=1))
    )
    await session.commit()

    r = await client.get(ME, headers=bearer(pair.access_token))

    assert r.status_code == 200, r.text
    # A marker would outlive the session: PostgreSQL goes on deciding.
    assert await redis.get(session_key(session_id)) is None


async def test_a_write_checked_in_postgresql_reads_the_callers_row_once(
    client: httpx.AsyncClient,
    user: UserFactory,
    token_pair: TokenFactory,
    statements: list[str],
) -> None:
    pair = await token_pair(await user())  # no marker yet: PostgreSQL checks the session
    statements.clear()

    r = await client.patch(ME, headers=bearer(pair.access_token), json={"full_name": "Ada"})

    assert r.status_code == 200, r.text
    assert r.json()["full_name"] == "Ada"
    # The session check's query returned the caller's row: the route reuses it.
    assert [s.split(" ")[0] for s in statements] == ["SELECT", "UPDATE"], statements
    assert "auth_sessions" in statements[0]


# --- the general limit is counted once -----------------------------------------------


async def test_an_authenticated_request_counts_once_against_the_general_limit(
    sessionmaker: async_sessionmaker[AsyncSession],
    redis: Redis,
    user: UserFactory,
    token_pair: TokenFactory,
) -> None:
    owner = await user()
    headers = bearer((await token_pair(owner)).access_token)
    paths = [ME, f"{AUTH}/sessions", f"{USERS}/{owner.id}", ME]
    app = create_app(make_settings(rate_limit="3/minute"))

    async for client in open_client(app, {"sessionmaker": sessionmaker}):
        responses = [await client.get(path, headers=headers) for path in paths]

    assert [r.status_code for r in responses] == [200, 200, 200, 429], responses[-1].text
    assert [r.headers["ratelimit"] for r in responses[:3]] == [
        '"api";r=2;t=20',
        '"api";r=1;t=40',
        '"api";r=0;t=60',
    ]
    assert_problem(responses[3], 429)


def _calls(dependant: Dependant) -> set[Callable[..., Any] | None]:
    calls = {dependant.call}
    for sub in dependant.dependencies:
        calls |= _calls(sub)
    return calls


def test_every_api_route_counts_against_the_general_limit_exactly_once(app: FastAPI) -> None:
    # Either the token check counts it, or enforce_api_limit does: a route with
    # neither would be unlimited, one with both would count every request twice.
    counters = {get_authenticated, enforce_api_limit}
    # With the dependencies main.py adds when it includes the routers.
    routes = [r for r in iter_route_contexts(app.routes) if (r.path or "").startswith("/api/")]
    assert len(routes) == 12
    for route in routes:
        assert len(_calls(route.dependant) & counters) == 1, (route.path, route.methods)


# --- revocation beats a marker written before it ---------------------------------------


async def test_logout_refuses_the_token_even_after_its_marker_was_written(
    client: httpx.AsyncClient, redis: Redis, user: UserFactory, token_pair: TokenFactory
) -> None:
    pair = await token_pair(await user())
    await warm_marker(client, redis, pair)

    r = await client.post(f"{AUTH}/logout", headers=bearer(pair.access_token))
    assert r.status_code == 204, r.text

    assert_problem(await client.get(ME, headers=bearer(pair.access_token)), 401)
    assert await redis.get(session_key(session_id_of(pair))) == b"revoked"


async def test_logout_also_forgets_the_other_session_its_refresh_token_names(
    client: httpx.AsyncClient, redis: Redis, user: UserFactory, token_pair: TokenFactory
) -> None:
    owner = await user()
    here, there = await token_pair(owner), await token_pair(owner)
    await warm_marker(client, redis, there)

    r = await client.post(
        f"{AUTH}/logout",
        headers=bearer(here.access_token),
        json={"refresh_token": there.refresh_token},
    )
    assert r.status_code == 204, r.text

    assert_problem(await client.get(ME, headers=bearer(there.access_token)), 401)


async def test_deleting_a_session_refuses_its_token_even_after_its_marker_was_written(
    client: httpx.AsyncClient, redis: Redis, user: UserFactory, token_pair: TokenFactory
) -> None:
    owner = await user()
    here, lost_phone = await token_pair(owner), await token_pair(owner)
    await warm_marker(client, redis, lost_phone)

    r = await client.delete(
        f"{AUTH}/sessions/{session_id_of(lost_phone)}", headers=bearer(here.access_token)
    )
    assert r.status_code == 204, r.text

    assert_problem(await client.get(ME, headers=bearer(lost_phone.access_token)), 401)


async def test_a_replayed_refresh_token_refuses_the_sessions_access_tokens_at_once(
    client: httpx.AsyncClient, redis: Redis, user: UserFactory, token_pair: TokenFactory
) -> None:
    first = await token_pair(await user())
    r = await client.post(f"{AUTH}/refresh", json={"refresh_token": first.refresh_token})
    assert r.status_code == 200, r.text
    second = Token.model_validate(r.json())
    await warm_marker(client, redis, second)

    replay = await client.post(f"{AUTH}/refresh", json={"refresh_token": first.refresh_token})
    assert_problem(replay, 401)

    for pair in (second, first):
        assert_problem(await client.get(ME, headers=bearer(pair.access_token)), 401)


async def test_a_password_change_refuses_the_other_sessions_even_after_their_markers(
    client: httpx.AsyncClient, redis: Redis, user: UserFactory, token_pair: TokenFactory
) -> None:
    owner = await user()
    current, other = await token_pair(owner), await token_pair(owner)
    await warm_marker(client, redis, current)
    await warm_marker(client, redis, other)

    r = await client.patch(
        ME,
        headers=bearer(current.access_token),
        json={"password": "a brand new passphrase", "current_password": PASSWORD},
    )
    assert r.status_code == 200, r.text

    assert_problem(await client.get(ME, headers=bearer(other.access_token)), 401)
    assert (await client.get(ME, headers=bearer(current.access_token))).status_code == 200


async def test_deactivation_refuses_every_session_even_after_their_markers(
    client: httpx.AsyncClient, redis: Redis, user: UserFactory, token_pair: TokenFactory
) -> None:
    admin, target = await user(is_admin=True), await user()
    sessions = [await token_pair(target), await token_pair(target)]
    for pair in sessions:
        await warm_marker(client, redis, pair)

    r = await client.patch(
        f"{USERS}/{target.id}",
        json={"is_active": False},
        headers=bearer((await token_pair(admin)).access_token),
    )
    assert r.status_code == 200, r.text

    for pair in sessions:
        assert_problem(await client.get(ME, headers=bearer(pair.access_token)), 401)


@pytest.mark.parametrize("deleted_by", ["admin", "self"])
async def test_deletion_refuses_the_users_tokens_even_after_their_markers(
    client: httpx.AsyncClient,
    redis: Redis,
    user: UserFactory,
    token_pair: TokenFactory,
    deleted_by: str,
) -> None:
    admin, target = await user(is_admin=True), await user()
    pair = await token_pair(target)
    await warm_marker(client, redis, pair)
    deleter = pair if deleted_by == "self" else await token_pair(admin)

    r = await client.delete(f"{USERS}/{target.id}", headers=bearer(deleter.access_token))
    assert r.status_code == 204, r.text

    assert_problem(await client.get(ME, headers=bearer(pair.access_token)), 401)


async def test_a_demoted_admin_is_refused_admin_routes_on_the_next_request(
    client: httpx.AsyncClient, redis: Redis, user: UserFactory, token_pair: TokenFactory
) -> None:
    root, demoted = await user(is_admin=True), await user(is_admin=True)
    pair = await token_pair(demoted)
    assert (await warm_marker(client, redis, pair, USERS)).startswith(b"admin:")

    r = await client.patch(
        f"{USERS}/{demoted.id}",
        json={"is_admin": False},
        headers=bearer((await token_pair(root)).access_token),
    )
    assert r.status_code == 200, r.text

    assert_problem(await client.get(USERS, headers=bearer(pair.access_token)), 403)
    # The session itself lives on: only the role it was cached with is gone.
    assert (await client.get(ME, headers=bearer(pair.access_token))).status_code == 200


# --- Redis unreachable ---------------------------------------------------------------


@pytest.fixture
async def client_without_redis(
    closed_port_url: str, database: str, sessionmaker: async_sessionmaker[AsyncSession]
) -> AsyncIterator[httpx.AsyncClient]:
    """A client of an app whose Redis URL points at a port nothing listens on."""
    settings = make_settings(redis_url=closed_port_url, redis_socket_timeout_seconds=0.3)
    async for client in open_client(create_app(settings), {"sessionmaker": sessionmaker}):
        yield client


async def test_without_redis_tokens_are_checked_in_postgresql_and_revocation_holds(
    client_without_redis: httpx.AsyncClient, user: UserFactory, token_pair: TokenFactory
) -> None:
    pair = await token_pair(await user())
    headers = bearer(pair.access_token)
    for _ in range(2):
        r = await client_without_redis.get(ME, headers=headers)
        assert r.status_code == 200, r.text
        # The general limit failed open: nothing was counted, so no header claims otherwise.
        assert "ratelimit" not in r.headers

    r = await client_without_redis.post(f"{AUTH}/logout", headers=headers)
    assert r.status_code == 204, r.text

    assert_problem(await client_without_redis.get(ME, headers=headers), 401)
    metrics = (await client_without_redis.get("/metrics")).text
    assert metric(metrics, 'auth_checks_total{source="database"}') == 4
    assert metric(metrics, 'auth_checks_total{source="redis"}') == 0
    assert metric(metrics, 'rate_limit_decisions_total{outcome="degraded",route_class="api"}') == 4
    assert metric(metrics, 'redis_errors_total{component="fastpath"}') == 5
    assert metric(metrics, "session_marker_forget_failures_total") == 1


async def test_a_revocation_that_cannot_reach_redis_is_logged_counted_and_bounded_by_the_ttl(
    client: httpx.AsyncClient,
    client_without_redis: httpx.AsyncClient,
    redis: Redis,
    user: UserFactory,
    token_pair: TokenFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Two replicas: one reaches Redis and wrote the marker; the one that handles
    # the logout cannot reach Redis, so it cannot overwrite the marker.
    pair = await token_pair(await user())
    marker = await warm_marker(client, redis, pair)

    r = await client_without_redis.post(f"{AUTH}/logout", headers=bearer(pair.access_token))
    assert r.status_code == 204, r.text

    # The replica without Redis asks PostgreSQL and refuses the token at once...
    assert_problem(await client_without_redis.get(ME, headers=bearer(pair.access_token)), 401)
    # ...while the marker stays until its TTL, the documented limit: logged and counted.
    key = session_key(session_id_of(pair))
    assert await redis.get(key) == marker
    assert 0 < await redis.ttl(key) <= 30
    errors = [
        r for r in caplog.records if r.name == "app.session_markers" and r.levelno == logging.ERROR
    ]
    assert len(errors) == 1, caplog.text
    assert "may stay admitted" in errors[0].getMessage()
    metrics = (await client_without_redis.get("/metrics")).text
    assert metric(metrics, "session_marker_forget_failures_total") == 1
