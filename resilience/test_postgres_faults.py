"""PostgreSQL faults: connections killed under load, and a server that is not there."""

import asyncio

import httpx
from harness.api import assert_outcome_is_problem, assert_problem, new_email, signup
from harness.database import terminate_app_connections, wait_for_app_connections
from harness.launcher import Launcher
from harness.processes import closed_port
from harness.traffic import Outcome, run_load, send

CLIENTS = 8
CLIENT_TIMEOUT_SECONDS = 15.0


async def test_killed_database_connections_fail_only_in_flight_requests_with_503(
    launch: Launcher,
) -> None:
    service = await launch.service()
    stop = asyncio.Event()
    async with service.client(timeout=CLIENT_TIMEOUT_SECONDS) as client:

        async def write(n: int) -> Outcome:
            email = new_email(f"pgkill{n}")
            return await send("POST /api/v1/users", signup(client, email), email=email)

        load = asyncio.create_task(
            run_load(write, clients=CLIENTS, max_requests=200, max_seconds=30, stop=stop)
        )
        try:
            # Once the load holds pooled connections, cut them all mid-load.
            await wait_for_app_connections(launch.db_url)
            await asyncio.sleep(0.5)
            killed = await terminate_app_connections(launch.db_url)
            await asyncio.sleep(1.0)
        finally:
            stop.set()
            outcomes = await load
        assert killed > 0, "No connection of the service was found to terminate."

        unanswered = [o.describe() for o in outcomes if not o.answered]
        assert not unanswered, unanswered
        failed = [o for o in outcomes if o.status != 201]
        for outcome in failed:
            assert_outcome_is_problem(outcome, 503)
        # Only the requests holding a connection when it was cut may fail: at most one per client.
        assert len(failed) <= CLIENTS, [o.describe() for o in failed]

        # The pool replaces the dead connections on its own: no restart, no error.
        for _ in range(CLIENTS + 2):
            response = await signup(client, new_email("pgkill-after"))
            assert response.status_code == 201, response.text


async def test_unreachable_database_reports_not_ready_and_answers_503(launch: Launcher) -> None:
    nowhere = f"postgresql+asyncpg://postgres@127.0.0.1:{closed_port()}/workshop_resilience"
    service = await launch.service("no-database", database_url=nowhere)
    # The client timeout bounds "within its timeout": a hang fails here, not a slow answer.
    async with service.client(timeout=10.0) as client:
        ready = await client.get("/health/ready")
        assert ready.status_code == 503, ready.text
        assert ready.json()["checks"]["database"] == "unavailable", ready.text

        live = await client.get("/health/live")
        assert live.status_code == 200, live.text

        write = await signup(client, new_email("nodb"))
        assert_problem(write, 503)
        assert "Traceback" not in write.text


async def test_database_coming_back_needs_no_restart(launch: Launcher) -> None:
    service = await launch.service()
    async with service.client(timeout=CLIENT_TIMEOUT_SECONDS) as client:
        assert (await signup(client, new_email("idle"))).status_code == 201
        # Idle pooled connections die too (a failover, a restarted server): pre-ping replaces them.
        await terminate_app_connections(launch.db_url)
        try:
            ready = await client.get("/health/ready")
            write = await signup(client, new_email("idle-after"))
        except httpx.TransportError as error:
            raise AssertionError(f"The service did not answer: {error!r}") from error
        assert ready.status_code == 200, ready.text
        assert write.status_code == 201, write.text
