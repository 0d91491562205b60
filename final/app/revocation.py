"""After a revocation commits: forget the ended sessions' fast-path markers, loudly on failure."""

import uuid
from collections.abc import Collection
from typing import cast

from fastapi import Request
from redis.asyncio import Redis

from app.config import Settings
from app.fastpath import forget_sessions
from app.metrics import Metrics


async def forget_session_markers(request: Request, session_ids: Collection[uuid.UUID]) -> None:
    """Stop Redis vouching for these sessions: call it right AFTER the commit that ends them.

    Before the commit, a request could still find the session live in
    PostgreSQL and mark it again. If Redis is unreachable from this replica,
    the markers stay for up to SESSION_MARKER_TTL_SECONDS, during which other
    replicas may still admit the sessions: logged (by forget_sessions) and counted.
    """
    settings = cast(Settings, request.state.settings)
    redis = cast(Redis, request.state.redis)
    ttl = settings.session_marker_ttl_seconds
    if not await forget_sessions(redis, session_ids, ttl_seconds=ttl):
        metrics = cast(Metrics, request.app.state.metrics)
        metrics.session_marker_forget_failures.inc(len(session_ids))
        metrics.redis_errors.labels("fastpath").inc()
