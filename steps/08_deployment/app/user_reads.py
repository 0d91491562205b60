"""The user read path through the cache, and the invalidation every write to a user needs."""

import uuid

from fastapi import Request, Response
from pydantic import TypeAdapter

from app.repository import UserRecord, UserRepository
from app.schemas import UserPublic
from app.state import request_state

_USER_PUBLIC = TypeAdapter(UserPublic)


def public_user_json(user: UserRecord) -> bytes:
    """The user as the API shows it, as the JSON bytes both the cache and the response hold."""
    # The same serialiser FastAPI uses for a UserPublic return value, so a
    # cached body is byte for byte the body PostgreSQL's row would give.
    return _USER_PUBLIC.dump_json(UserPublic.model_validate(user))


# --8<-- [start:read]
async def read_user_json(
    request: Request, user_id: uuid.UUID, *, prefetched: bytes | None = None
) -> bytes | None:
    """The public user's JSON from the cache, or from PostgreSQL once per key on a miss.

    `prefetched` is the cached JSON the token fast path already read from this
    user's key: a hit that costs no second look-up.
    """
    state = request_state(request)

    async def load() -> bytes | None:
        # A session only on a miss: building and closing one costs a cached
        # read about a fifth of its time.
        async with state["sessionmaker"]() as session:
            user = await UserRepository(session).get(user_id)
        return None if user is None else public_user_json(user)

    cache = state["user_cache"]
    if cache is None:  # CACHE_ENABLED=false
        return await load()
    if prefetched is not None:
        cache.count_hit()
        return prefetched
    return await cache.get_or_load(str(user_id), load)


# --8<-- [end:read]


async def invalidate_user(request: Request, user_id: uuid.UUID) -> None:
    """Drop a user's cached JSON: call it right AFTER the commit of every write to that user.

    Before the commit, a read could reload the old row and cache it again; after,
    any later read sees the new one. If Redis is unavailable the entry may stay
    stale until its TTL (the cache logs and counts that).
    """
    cache = request_state(request)["user_cache"]
    if cache is not None:
        await cache.invalidate(str(user_id))


def json_response(body: bytes, response: Response) -> Response:
    """Send JSON bytes as they are, with the headers dependencies set (RateLimit, for one)."""
    # A route that returns a Response gets none of the headers dependencies put
    # on the `response` parameter: copy them over.
    return Response(body, media_type="application/json", headers=response.headers)
