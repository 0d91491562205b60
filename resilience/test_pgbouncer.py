"""final/ behind PgBouncer in transaction mode: the users and auth flows, clients at once."""

import asyncio
import json
import re
import sys

import httpx
import pytest
from harness.api import PASSWORD, bearer, new_email, signup
from harness.launcher import Launcher
from harness.pgbouncer import HOW_TO_INSTALL, PgBouncer, pgbouncer_binary
from harness.service import FINAL_DIR, Service, service_environment
from harness.traffic import Outcome, send

CLIENTS = 6
# Each client's flow is a fixed list of requests: the load is bounded by count,
# and the whole run by this deadline.
FLOW_BOUND_SECONDS = 90.0
# What asyncpg raises without the setting, when each transaction may run on
# another server connection.
# A name cached by the dialect but never prepared on this server connection
# "does not exist"; asyncpg's numbered names, prepared by two clients on one
# server connection, "already exist".
PREPARED_STATEMENT_ERRORS = re.compile(r"prepared statement \S+ (does not exist|already exists)")
# The setting under test; without it this test fails with those errors.
BEHIND_PGBOUNCER = {"DB_BEHIND_PGBOUNCER": "true"}


@pytest.fixture
def binary() -> str:
    """The pgbouncer binary (asked first: without one, the test fails before starting anything)."""
    found = pgbouncer_binary()
    if found is None:
        # A failure, not a skip: a missing PgBouncer must not read as a pass.
        pytest.fail(HOW_TO_INSTALL, pytrace=False)
    return found


@pytest.fixture
async def pgbouncer(binary: str, launch: Launcher) -> PgBouncer:
    """PgBouncer (pool_mode = transaction) in front of the suite's database."""
    return await launch.pgbouncer(binary)


@pytest.fixture
async def service(launch: Launcher, pgbouncer: PgBouncer) -> Service:
    """final/ with DATABASE_URL pointing at PgBouncer, and DB_BEHIND_PGBOUNCER set."""
    return await launch.service(
        "behind-pgbouncer",
        database_url=pgbouncer.url,
        extra=BEHIND_PGBOUNCER,
    )


async def create_admin(pgbouncer: PgBouncer, email: str) -> None:
    """`python -m app create-admin`, through PgBouncer as well."""
    env = service_environment(
        database_url=pgbouncer.url, redis_url="redis://127.0.0.1:1/0", extra=BEHIND_PGBOUNCER
    )
    process = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "app", "create-admin", "--email", email),
        cwd=FINAL_DIR,
        env=env,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(f"{PASSWORD}\n".encode()), 60)
    assert process.returncode == 0, output.decode(errors="replace")


async def user_flow(client: httpx.AsyncClient, n: int) -> list[Outcome]:
    """Sign up, log in, read and change the profile, refresh, list sessions, log out."""
    email = new_email(f"pgbouncer-{n}")
    outcomes = [await send("sign up", signup(client, email), email=email)]
    logged_in = await log_in(client, email)
    outcomes.append(logged_in)
    if logged_in.status != 200:
        # Nothing to go on with: the assertions report this outcome.
        return outcomes
    tokens = json.loads(logged_in.body)
    headers = bearer(tokens)
    outcomes.append(await send("me", client.get("/api/v1/users/me", headers=headers)))
    patch = client.patch("/api/v1/users/me", headers=headers, json={"full_name": f"Client {n}"})
    outcomes.append(await send("patch me", patch))
    refresh = client.post("/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    refreshed = await send("refresh", refresh)
    outcomes.append(refreshed)
    if refreshed.status == 200:
        tokens = json.loads(refreshed.body)
        headers = bearer(tokens)
    outcomes.append(await send("sessions", client.get("/api/v1/auth/sessions", headers=headers)))
    logout = client.post(
        "/api/v1/auth/logout", headers=headers, json={"refresh_token": tokens["refresh_token"]}
    )
    outcomes.append(await send("logout", logout))
    outcomes.append(await send("me after logout", client.get("/api/v1/users/me", headers=headers)))
    return outcomes


async def log_in(client: httpx.AsyncClient, email: str) -> Outcome:
    """POST /api/v1/auth/token, recorded (a 500 here is what the test looks for)."""
    form = {"username": email, "password": PASSWORD}
    return await send("log in", client.post("/api/v1/auth/token", data=form))


async def admin_lists(client: httpx.AsyncClient, email: str) -> list[Outcome]:
    """The admin logs in and pages through the user list while the others sign up."""
    logged_in = await log_in(client, email)
    outcomes = [logged_in]
    if logged_in.status == 200:
        headers = bearer(json.loads(logged_in.body))
        for _ in range(CLIENTS):
            listed = client.get("/api/v1/users?limit=2", headers=headers)
            outcomes.append(await send("list users", listed))
    return outcomes


EXPECTED = {
    "sign up": 201,
    "log in": 200,
    "me": 200,
    "patch me": 200,
    "refresh": 200,
    "sessions": 200,
    "logout": 204,
    "me after logout": 401,
    "list users": 200,
}


# --8<-- [start:test]
async def test_users_and_auth_flows_work_behind_pgbouncer_in_transaction_mode(
    pgbouncer: PgBouncer, service: Service
) -> None:
    admin_email = new_email("pgbouncer-admin")
    await create_admin(pgbouncer, admin_email)
    async with service.client(timeout=30.0) as client:
        async with asyncio.timeout(FLOW_BOUND_SECONDS):
            results = await asyncio.gather(
                admin_lists(client, admin_email),
                *(user_flow(client, n) for n in range(CLIENTS)),
            )
    outcomes = [outcome for flow in results for outcome in flow]

    log = service.owned.log_path.read_text(errors="replace")
    broken = [match.group(0) for match in PREPARED_STATEMENT_ERRORS.finditer(log)]
    assert not broken, f"{len(broken)} prepared-statement errors in the log: {broken[:3]}"
    server_errors = [o.describe() for o in outcomes if o.status is None or o.status >= 500]
    assert not server_errors, server_errors
    unexpected = [o.describe() for o in outcomes if o.status != EXPECTED[o.label]]
    assert not unexpected, unexpected


# --8<-- [end:test]
