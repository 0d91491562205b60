"""Exercise: a read of an id that names no user reaches PostgreSQL once, not every time."""

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncConnection

USERS = "/api/v1/users"


@pytest.fixture
def queries_about(connection: AsyncConnection) -> Iterator[Callable[[str], int]]:
    """Count the SQL statements the app sends about one id (on the test's connection)."""
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, _statement: str, parameters: Any, *_: Any) -> None:
        seen.append(repr(parameters))

    event.listen(connection.engine.sync_engine, "before_cursor_execute", record)
    yield lambda user_id: sum(1 for params in seen if user_id in params)
    event.remove(connection.engine.sync_engine, "before_cursor_execute", record)


async def test_repeated_reads_of_an_unknown_id_query_the_database_once(
    client: httpx.AsyncClient, queries_about: Callable[[str], int]
) -> None:
    unknown = str(uuid.uuid4())

    codes = [(await client.get(f"{USERS}/{unknown}")).status_code for _ in range(3)]

    assert codes == [404, 404, 404]
    assert queries_about(unknown) == 1
