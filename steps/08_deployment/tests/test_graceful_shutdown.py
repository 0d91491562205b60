"""SIGTERM: uvicorn stops accepting, the request in flight finishes and commits, then it exits."""

import asyncio
import signal

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine
from sqlalchemy.pool import NullPool
from tests.conftest import PASSWORD, wait_for_lock_waits
from tests.served import HOST, Instance

pytestmark = pytest.mark.task("graceful-shutdown")

EMAIL = "in-flight@example.com"


async def refuses_connections(port: int) -> bool:
    """True once nothing accepts a connection on the port any more."""
    try:
        _, writer = await asyncio.open_connection(HOST, port)
    except ConnectionRefusedError:
        return True
    writer.close()
    await writer.wait_closed()
    return False


async def wait_until_refused(instance: Instance) -> None:
    """Poll, within a bound, until the instance's port refuses new connections."""
    for _ in range(600):
        if await refuses_connections(instance.image.port):
            return
        await asyncio.sleep(0.05)
    pytest.fail(f"The port still accepts connections after SIGTERM:\n{instance.log()}")


async def test_sigterm_lets_the_sign_up_in_flight_finish_and_commit(
    served: Instance, database: str, observer: AsyncConnection
) -> None:
    holder_engine = create_async_engine(database, poolclass=NullPool)
    try:
        async with holder_engine.connect() as holder, served.client() as client:
            # An uncommitted row with the same address: the app's INSERT waits on
            # the unique index until this transaction ends. A slow write, on demand.
            await holder.execute(
                text("INSERT INTO users (email, password_hash) VALUES (:email, 'held')"),
                {"email": EMAIL},
            )
            sign_up = asyncio.create_task(
                client.post("/api/v1/users", json={"email": EMAIL, "password": PASSWORD})
            )
            await wait_for_lock_waits(observer, 1)

            served.process.send_signal(signal.SIGTERM)
            await served.wait_for_output("Shutting down")
            await wait_until_refused(served)
            assert not sign_up.done(), "the request ended before its write could finish"
            await holder.rollback()  # the write goes on, and commits
            response = await sign_up
        code = await served.exit_code()
    finally:
        await holder_engine.dispose()

    assert response.status_code == 201, response.text
    assert response.json()["email"] == EMAIL, response.text
    committed = await observer.scalar(
        text("SELECT count(*) FROM users WHERE email = :email"), {"email": EMAIL}
    )
    assert committed == 1
    # uvicorn re-raises the SIGTERM it caught once it has shut down: the process
    # ends "killed by SIGTERM" (-15 here, 143 in a shell), what Kubernetes expects.
    assert code == -signal.SIGTERM, served.log()
    assert "Application shutdown complete." in served.log(), served.log()
