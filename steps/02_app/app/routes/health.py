"""Health checks for load balancers and orchestrators."""

from fastapi import APIRouter

router = APIRouter(prefix="/health", tags=["health"])


@router.get("/live")
async def live() -> dict[str, str]:
    """Report that the process serves requests; checks nothing outside it."""
    return {"status": "ok"}
