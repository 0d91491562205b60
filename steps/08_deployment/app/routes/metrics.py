"""Prometheus scrape endpoint."""

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy.pool import QueuePool

from app.state import request_state

router = APIRouter(tags=["operations"])


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
)
async def metrics(request: Request) -> Response:
    """Expose the service's metrics in Prometheus text format."""
    state = request_state(request)
    instruments, pool = state["metrics"], state["engine"].pool
    if isinstance(pool, QueuePool):
        # Read at scrape time: the pool knows, no bookkeeping on every checkout.
        instruments.db_pool_in_use.set(pool.checkedout())
    return Response(generate_latest(instruments.registry), media_type=CONTENT_TYPE_LATEST)
