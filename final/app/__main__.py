"""Command-line administration: `python -m app create-admin --email EMAIL`."""

import argparse
import asyncio
import sys

from pydantic import ValidationError

from app.config import Settings, SettingsError, get_settings
from app.db import create_engine, create_sessionmaker
from app.errors import is_database_unavailable
from app.repository import EmailTakenError, UserRepository
from app.schemas import UserCreate
from app.security import PasswordHasher


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
    """Create the admin user, or promote the existing one; return whether it was created."""
    engine = create_engine(settings)
    try:
        async with create_sessionmaker(engine)() as session:
            users = UserRepository(session)
            try:
                await users.create(
                    email=email,
                    password_hash=await PasswordHasher(settings).hash(password),
                    is_admin=True,
                )
                created = True
            except EmailTakenError:
                # Promote, keeping the user's own password: an operator should not
                # silently reset someone's credentials.
                existing = await users.get_by_email(email)
                if existing is None:  # deleted between the two statements
                    raise
                await users.update(existing.id, {"is_admin": True, "is_active": True})
                created = False
            await session.commit()
    finally:
        await engine.dispose()
    return created


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the process exit code."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_usage(sys.stderr)
        return 2
    # One line from stdin, so the password never appears in the process list or shell history.
    password = sys.stdin.readline().rstrip("\r\n")
    try:
        body = UserCreate(email=args.email, password=password)
        settings = get_settings()
        created = asyncio.run(create_admin(settings, body.email, body.password))
    except ValidationError as exc:
        print(_describe(exc), file=sys.stderr)
        return 1
    except SettingsError as exc:
        print(exc, file=sys.stderr)
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


if __name__ == "__main__":
    sys.exit(main())
