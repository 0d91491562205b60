"""Liveness and readiness probes for the orchestrator and the load balancer."""

import asyncio
import logging

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.deps import SettingsDep
from app.errors import PROBLEM_JSON, problem_response
from app.redis_client import ThrottledLog
from app.state import request_state

router = APIRouter(prefix="/health", tags=["health"])
logger = logging.getLogger("app.health")
# A load balancer probes every few seconds: one line a minute is enough to say Redis is down.
_redis_log = ThrottledLog(logger)


@router.get("/live")
async def live() -> dict[str, str]:
    """Report that the process serves requests; checks nothing outside it."""
    # A dependency's outage must not get healthy processes restarted: that is readiness.
    return {"status": "ok"}


@router.get(
    "/ready",
    responses={
        503: {
            "description": "The database is not answering (a problem with a `checks` member).",
            "content": {PROBLEM_JSON: {}},
        }
    },
)
async def ready(request: Request, settings: SettingsDep) -> JSONResponse:
    """Report whether this instance can serve traffic: 503 while PostgreSQL does not answer."""
    timeout = settings.health_check_timeout_seconds
    # Both at once: the probe takes at most one timeout, however many checks there are.
    database, redis = await asyncio.gather(
        _check_database(request_state(request)["engine"], seconds=timeout),
        _check_redis(request, seconds=timeout),
    )
    checks = {"database": database, "redis": redis}
    if database != "ok":
        # A problem like every other error (RFC 9457), with the checks as an
        # extension member so probes and dashboards can still read them.
        return problem_response(
            503,
            "The database is not answering; this instance cannot serve requests.",
            request.url.path,
            checks=checks,
        )
    # Redis down is "degraded", still 200: the service answers from PostgreSQL
    # without its cache, and taking every replica out of the load balancer
    # because of the cache would turn a slower service into no service.
    return JSONResponse({"status": "ok" if redis == "ok" else "degraded", "checks": checks})


async def _check_database(engine: AsyncEngine, *, seconds: float) -> str:
    try:
        # The timeout covers the pool checkout, the connect and the query: a
        # database that accepts connections but never answers is "unavailable" too.
        async with asyncio.timeout(seconds), engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
    except Exception as exc:  # any failure at all means "not ready"
        logger.warning(
            "Readiness check: database unavailable.", extra={"error": type(exc).__name__}
        )
        return "unavailable"
    return "ok"


async def _check_redis(request: Request, *, seconds: float) -> str:
    state = request_state(request)
    try:
        async with asyncio.timeout(seconds):
            await state["redis"].ping()
    except Exception as exc:  # any failure at all means "unavailable"
        state["metrics"].redis_errors.labels("health").inc()
        _redis_log.warning("Readiness check: Redis unavailable", exc)
        return "unavailable"
    return "ok"
