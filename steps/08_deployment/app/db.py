"""The declarative base, and the engine and sessionmaker factories."""

import logging
import time
import uuid
from typing import Any

from sqlalchemy import MetaData, event
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase

from app.config import Settings

logger = logging.getLogger("app.db")
# Every pooled connection says who it is in pg_stat_activity.
APPLICATION_NAME = "workshop-final"

# Deterministic constraint names, so Alembic can find (and drop) them by name.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Base class of every ORM model."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def create_engine(settings: Settings) -> AsyncEngine:
    """Create the engine: a fixed-size pool with bounded waits at every step."""
    engine = create_async_engine(
        settings.database_url,
        pool_size=settings.db_pool_size,
        # A fixed pool: overflow connections are opened and closed again under
        # load (hundreds of new PostgreSQL sessions in seconds), which measured
        # slower and with a far worse p99 than a steady pool of the same size.
        max_overflow=0,
        # One cheap round trip on checkout replaces a 500 after a database restart.
        pool_pre_ping=True,
        pool_timeout=settings.db_pool_timeout_seconds,
        # An error's text (and so a 500's traceback in the log) would otherwise
        # end with the statement's parameters: emails and password hashes.
        hide_parameters=True,
        connect_args=_connect_args(settings),
    )
    _log_slow_statements(engine, settings.slow_query_ms)
    return engine


def _connect_args(settings: Settings) -> dict[str, Any]:
    """asyncpg's connection arguments; behind PgBouncer, no statement kept between transactions."""
    args: dict[str, Any] = {
        "timeout": settings.db_connect_timeout_seconds,
        "server_settings": {"application_name": APPLICATION_NAME},
    }
    if not settings.db_behind_pgbouncer:
        # Enforced by the server, so a runaway query cannot hold a pooled
        # connection for longer than this, whatever the client does.
        args["server_settings"]["statement_timeout"] = str(settings.db_statement_timeout_ms)
        return args
    # PgBouncer refuses statement_timeout as a start-up parameter (it is set on
    # the database instead). In transaction mode each transaction may run on
    # another server connection: a statement prepared and cached on one is
    # missing on the next ("prepared statement ... does not exist"), and
    # asyncpg's numbered names collide between clients ("... already exists").
    args.update(
        statement_cache_size=0,
        prepared_statement_cache_size=0,
        prepared_statement_name_func=_unique_statement_name,
    )
    return args


def _unique_statement_name() -> str:
    """A prepared statement name no other client of the same server connection uses."""
    return f"__asyncpg_{uuid.uuid4()}__"


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Create the session factory the request dependencies use."""
    # expire_on_commit=False: objects stay readable after commit without another query.
    return async_sessionmaker(engine, expire_on_commit=False)


def _log_slow_statements(engine: AsyncEngine, threshold_ms: int) -> None:
    """Log every statement slower than threshold_ms, with its duration (never its parameters)."""

    @event.listens_for(engine.sync_engine, "before_cursor_execute")
    def _start_timer(conn: Connection, *_: Any) -> None:
        conn.info.setdefault("query_started_at", []).append(time.perf_counter())

    @event.listens_for(engine.sync_engine, "after_cursor_execute")
    def _stop_timer(conn: Connection, _cursor: Any, statement: str, *_: Any) -> None:
        duration_ms = (time.perf_counter() - conn.info["query_started_at"].pop()) * 1000
        if duration_ms >= threshold_ms:
            # The statement text only: parameters can hold emails and password hashes.
            # The request id comes from the log filter (app/logging.py).
            logger.warning(
                "Slow SQL statement.",
                extra={"duration_ms": round(duration_ms, 2), "statement": statement},
            )
