"""SessionRepository against the real database: which sessions are live, and what each call does."""

import uuid
from datetime import timedelta

import pytest
from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import AuthSession
from app.repository import SessionRepository, UserRepository


async def _user(session: AsyncSession, email: str) -> uuid.UUID:
    return (await UserRepository(session).create(email=email, password_hash="hash")).id


async def _start(
    sessions: SessionRepository, user_id: uuid.UUID, refresh_hash: str = "h0"
) -> uuid.UUID:
    return await sessions.create(
        user_id=user_id, refresh_token_hash=refresh_hash, ttl_seconds=3600, user_agent=None, ip=None
    )


async def _set(session: AsyncSession, session_id: uuid.UUID, **values: object) -> None:
    """Write columns of one auth_sessions row directly (times the test cannot wait for)."""
    await session.execute(update(AuthSession).where(AuthSession.id == session_id).values(**values))


async def _expire(session: AsyncSession, session_id: uuid.UUID) -> None:
    await _set(session, session_id, expires_at=func.now() - timedelta(seconds=1))


async def _live_beside_dead(
    session: AsyncSession, sessions: SessionRepository, user_id: uuid.UUID
) -> list[uuid.UUID]:
    """Start two live sessions beside a revoked and an expired one; return the live ones' ids."""
    live = [await _start(sessions, user_id) for _ in range(2)]
    revoked, expired = await _start(sessions, user_id), await _start(sessions, user_id)
    assert await sessions.revoke(revoked)
    await _expire(session, expired)
    return live


# --- starting and listing -------------------------------------------------------------


async def test_a_session_keeps_the_user_agent_and_ip_it_was_started_with(
    session: AsyncSession,
) -> None:
    sessions = SessionRepository(session)
    owner = await _user(session, "ada@example.com")
    session_id = await sessions.create(
        user_id=owner,
        refresh_token_hash="h0",
        ttl_seconds=3600,
        user_agent="Firefox/140.0",
        ip="203.0.113.7",
    )
    # What the owner sees in their session list to recognise a device, or a thief's.
    [listed] = await sessions.list_live(owner)
    assert (listed.id, listed.user_agent, listed.ip) == (session_id, "Firefox/140.0", "203.0.113.7")


async def test_live_sessions_are_listed_newest_first(session: AsyncSession) -> None:
    sessions = SessionRepository(session)
    owner = await _user(session, "ada@example.com")
    ids = sorted([await _start(sessions, owner) for _ in range(3)])
    # One transaction, one now(): date them apart, the lowest id the oldest, so
    # that newest first is not the id order.
    for hours_old, session_id in enumerate(reversed(ids)):
        await _set(session, session_id, created_at=func.now() - timedelta(hours=hours_old))
    assert [item.id for item in await sessions.list_live(owner)] == ids[::-1]


async def test_sessions_started_at_the_same_moment_are_listed_in_id_order(
    session: AsyncSession,
) -> None:
    owner = await _user(session, "ada@example.com")
    ids = sorted(uuid.uuid4() for _ in range(4))
    # One transaction, one now(): they tie on created_at. Stored in descending id
    # order, so that the order they are read in is not the id order: only the id
    # in the ORDER BY makes the list the same from one request to the next.
    for session_id in ids[::-1]:
        started = insert(AuthSession).values(
            id=session_id,
            user_id=owner,
            refresh_token_hash="h0",
            expires_at=func.now() + timedelta(hours=1),
        )
        await session.execute(started)
    assert [item.id for item in await SessionRepository(session).list_live(owner)] == ids


async def test_live_ids_are_the_users_sessions_neither_revoked_nor_expired(
    session: AsyncSession,
) -> None:
    sessions = SessionRepository(session)
    owner = await _user(session, "ada@example.com")
    stranger = await _user(session, "bob@example.com")
    live = await _live_beside_dead(session, sessions, owner)
    await _start(sessions, stranger)
    # The sessions whose Redis markers an admin's change or a deletion forgets.
    assert sorted(await sessions.live_ids(owner)) == sorted(live)


# --- what a request's token check reads ----------------------------------------------


async def test_load_authenticated_needs_the_session_to_be_the_token_subjects(
    session: AsyncSession,
) -> None:
    sessions = SessionRepository(session)
    ada, bob = await _user(session, "ada@example.com"), await _user(session, "bob@example.com")
    adas_session = await _start(sessions, ada)
    loaded = await sessions.load_authenticated(adas_session, ada)
    assert loaded is not None
    assert loaded.user.id == ada
    # A token naming bob with ada's session id: no session of bob's, no user.
    assert await sessions.load_authenticated(adas_session, bob) is None


# --- rotation and replay --------------------------------------------------------------


async def test_rotate_swaps_the_hash_of_the_named_session_only(session: AsyncSession) -> None:
    sessions = SessionRepository(session)
    owner = await _user(session, "ada@example.com")
    first = await _start(sessions, owner, "first's secret")
    second = await _start(sessions, owner, "second's secret")
    # The session id and the secret come together in one refresh token: a secret
    # rotates its own session, never another one that happens to hold it.
    assert await sessions.rotate(second, "first's secret", "new") is None
    assert await sessions.rotate(first, "first's secret", "first's next") == owner


async def test_rotate_refuses_the_live_session_of_a_deactivated_user(
    session: AsyncSession,
) -> None:
    sessions = SessionRepository(session)
    owner = await _user(session, "ada@example.com")
    session_id = await _start(sessions, owner, "current")
    # Deactivated without its sessions being revoked (the admin route revokes
    # them too): rotate checks the account itself rather than trust every
    # deactivation to have revoked every session first.
    await UserRepository(session).update(owner, {"is_active": False})
    assert await sessions.rotate(session_id, "current", "next") is None


async def test_rotate_marks_the_session_as_used_now(session: AsyncSession) -> None:
    sessions = SessionRepository(session)
    owner = await _user(session, "ada@example.com")
    session_id = await _start(sessions, owner, "current")
    await _set(session, session_id, last_used_at=func.now() - timedelta(days=3))
    assert await sessions.rotate(session_id, "current", "next") == owner
    [listed] = await sessions.list_live(owner)
    # now() is the transaction's start: the rotation's own clock, in this test.
    assert listed.last_used_at == await session.scalar(select(func.now()))


async def test_revoke_on_replay_is_true_for_a_spent_secret_and_false_for_a_guess(
    session: AsyncSession,
) -> None:
    sessions = SessionRepository(session)
    owner = await _user(session, "ada@example.com")
    session_id = await _start(sessions, owner, "spent")
    assert await sessions.rotate(session_id, "spent", "current") == owner
    # The refresh route forgets the session's Redis marker only when this says
    # True: a replay answered False would leave the family's access tokens admitted.
    assert await sessions.revoke_on_replay(session_id, "never issued") is False
    assert await sessions.live_ids(owner) == [session_id]
    assert await sessions.revoke_on_replay(session_id, "spent") is True
    assert await sessions.live_ids(owner) == []


@pytest.mark.parametrize("ended", ["revoked", "expired"])
async def test_revoke_on_replay_of_a_session_already_ended_changes_nothing(
    session: AsyncSession, ended: str
) -> None:
    sessions = SessionRepository(session)
    owner = await _user(session, "ada@example.com")
    session_id = await _start(sessions, owner, "spent")
    assert await sessions.rotate(session_id, "spent", "current") == owner
    if ended == "revoked":
        assert await sessions.revoke(session_id)
    else:
        await _expire(session, session_id)
    revoked_at = select(AuthSession.revoked_at).where(AuthSession.id == session_id)
    before = await session.scalar(revoked_at)
    assert await sessions.revoke_on_replay(session_id, "spent") is False
    assert await session.scalar(revoked_at) == before


# --- revoking ---------------------------------------------------------------------------


async def test_revoke_all_returns_the_sessions_it_ended_and_spares_the_kept_one(
    session: AsyncSession,
) -> None:
    sessions = SessionRepository(session)
    owner = await _user(session, "ada@example.com")
    kept = await _start(sessions, owner)
    live = await _live_beside_dead(session, sessions, owner)
    # The callers forget exactly these sessions' Redis markers: a missing id
    # would leave a revoked session admitted by its marker; a dead one listed is
    # a session that was already over, not one this call ended.
    assert sorted(await sessions.revoke_all(owner, keep=kept)) == sorted(live)
    assert await sessions.live_ids(owner) == [kept]
