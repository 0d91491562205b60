"""Liveness and readiness probes for the orchestrator and the load balancer."""

import asyncio
import logging

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.deps import SettingsDep
from app.state import request_state

router = APIRouter(prefix="/health", tags=["health"])
logger = logging.getLogger("app.health")


@router.get("/live")
async def live() -> dict[str, str]:
    """Report that the process serves requests; checks nothing outside it."""
    # A dependency's outage must not get healthy processes restarted: that is readiness.
    return {"status": "ok"}


@router.get(
    "/ready",
    responses={503: {"description": "The database is not answering (`checks` says which)."}},
)
async def ready(request: Request, settings: SettingsDep) -> JSONResponse:
    """Report whether this instance can serve traffic: 503 while PostgreSQL does not answer."""
    database = await _check_database(
        request_state(request)["engine"], seconds=settings.health_check_timeout_seconds
    )
    checks = {"database": database}
    if database != "ok":
        return JSONResponse(
            {
                "detail": "The database is not answering; this instance cannot serve requests.",
                "checks": checks,
            },
            status_code=503,
        )
    return JSONResponse({"status": "ok", "checks": checks})


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
