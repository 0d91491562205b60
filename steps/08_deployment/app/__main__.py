"""`python -m app`: show the effective settings; `python -m app create-admin --email EMAIL`."""

import argparse
import asyncio
import sys
import uuid
from urllib.parse import urlsplit, urlunsplit

from pydantic import SecretStr, ValidationError

from app.cache import UserCache
from app.config import Settings, SettingsError, load_settings
from app.db import create_engine, create_sessionmaker
from app.errors import is_database_unavailable
from app.redis_client import create_redis
from app.repository import EmailTakenError, SessionRepository, UserRepository
from app.schemas import UserCreate
from app.security import PasswordHasher
from app.session_markers import forget_sessions

MASK = "**********"


def _mask_url_password(url: str) -> str:
    """Replace the password in a URL with the mask, keeping everything else."""
    parts = urlsplit(url)
    userinfo, at, host = parts.netloc.rpartition("@")
    user, colon, _password = userinfo.partition(":")
    if not colon:
        return url
    return urlunsplit(parts._replace(netloc=f"{user}:{MASK}{at}{host}"))


def _display(value: object) -> str:
    """Render one setting the way a person would type it into the environment."""
    if isinstance(value, SecretStr):
        return MASK
    if isinstance(value, list):
        return ",".join(value) if value else "(none)"
    if isinstance(value, str) and "://" in value:
        return _mask_url_password(value)
    return str(value)


def format_settings(settings: Settings) -> str:
    """Return one aligned `NAME  value` line per setting, secrets masked."""
    names = [name.upper() for name in Settings.model_fields]
    width = max(len(name) for name in names)
    return "\n".join(
        f"{name.ljust(width)}  {_display(getattr(settings, name.lower()))}" for name in names
    )


class DeactivatedUserError(Exception):
    """The email belongs to a deactivated account, which this command does not bring back."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m app", description=__doc__)
    commands = parser.add_subparsers(dest="command")
    create_admin = commands.add_parser(
        "create-admin",
        help="Create an admin user, or promote an existing one; the password is read from stdin.",
    )
    create_admin.add_argument("--email", required=True)
    return parser


def _describe(error: ValidationError) -> str:
    """One line per CLI failure, naming the field and never echoing the password."""
    first = error.errors(include_input=False)[0]
    field = str(first["loc"][0]) if first["loc"] else "input"
    if field == "password":
        return "The password must be between 8 and 128 characters long."
    return f"The {field} is not valid: {str(first['msg']).rstrip('.')}."


async def create_admin(settings: Settings, email: str, password: str) -> bool:
    """Create the admin user, or promote the existing one; return whether it was created.

    Raise DeactivatedUserError for a deactivated account: it was deactivated for
    a reason this command cannot know (a compromised account, perhaps), so it
    is neither reactivated nor promoted. An admin reactivates it through the API.
    """
    engine = create_engine(settings)
    try:
        async with create_sessionmaker(engine)() as session:
            users = UserRepository(session)
            promoted: tuple[uuid.UUID, list[uuid.UUID]] | None = None
            try:
                await users.create(
                    email=email,
                    password_hash=await PasswordHasher(settings).hash(password),
                    is_admin=True,
                )
            except EmailTakenError:
                # Promote, keeping the user's own password: an operator should not
                # silently reset someone's credentials.
                existing = await users.get_by_email(email)
                if existing is None:  # deleted between the two statements
                    raise
                if not existing.is_active:
                    raise DeactivatedUserError from None
                await users.update(existing.id, {"is_admin": True})
                # Read after the UPDATE, which waited for any login holding the
                # row: that login's session is committed by now, and listed here.
                promoted = (existing.id, await SessionRepository(session).live_ids(existing.id))
            await session.commit()
    finally:
        await engine.dispose()
    if promoted is None:
        return True
    await _forget_old_role(settings, *promoted)
    return False


async def _forget_old_role(
    settings: Settings, user_id: uuid.UUID, sessions: list[uuid.UUID]
) -> None:
    """After the commit, drop what Redis holds of the user's old role, as the API's writes do.

    The cached user shows `is_admin: false` and each session marker records the
    role "user": both would be believed until their TTLs ran out.
    """
    redis = create_redis(
        settings.redis_url,
        socket_timeout=settings.redis_socket_timeout_seconds,
        connect_timeout=settings.redis_connect_timeout_seconds,
        health_check_interval=0,
        max_connections=2,
    )
    try:
        cache = UserCache(redis, ttl_seconds=settings.cache_ttl_seconds)
        invalidated = await cache.invalidate(str(user_id))
        forgotten = await forget_sessions(
            redis, sessions, ttl_seconds=settings.session_marker_ttl_seconds
        )
    finally:
        await redis.aclose()
    if not (invalidated and forgotten):
        longest = max(settings.cache_ttl_seconds, settings.session_marker_ttl_seconds)
        print(
            "Redis is not answering: the user's sessions may see their old role "
            f"for up to {longest:g} seconds.",
            file=sys.stderr,
        )


def _run_create_admin(settings: Settings, email: str) -> int:
    # One line from stdin, so the password never appears in the process list or shell history.
    password = sys.stdin.readline().rstrip("\r\n")
    try:
        body = UserCreate(email=email, password=password)
        created = asyncio.run(create_admin(settings, body.email, body.password))
    except ValidationError as exc:
        print(_describe(exc), file=sys.stderr)
        return 1
    except DeactivatedUserError:
        print(
            f"User {body.email} is deactivated: this command does not reactivate accounts; "
            "an admin can (PATCH /api/v1/users/{id} with is_active true).",
            file=sys.stderr,
        )
        return 1
    except Exception as exc:
        if not is_database_unavailable(exc):
            raise  # a bug: the traceback is the useful output
        print(f"The database is not answering ({type(exc).__name__}).", file=sys.stderr)
        return 1
    if created:
        print(f"Created admin user {body.email}.")
    else:
        print(f"Promoted existing user {body.email} to admin; their password is unchanged.")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Print the effective settings, or run a command; exit 2 with one line per bad setting."""
    args = _parser().parse_args(argv)
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(exc, file=sys.stderr)
        return 2
    if args.command == "create-admin":
        return _run_create_admin(settings, args.email)
    print(format_settings(settings))
    return 0


if __name__ == "__main__":
    sys.exit(main())
