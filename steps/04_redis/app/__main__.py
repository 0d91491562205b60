"""`python -m app`: show the effective settings, or the one line saying what is wrong."""

import sys
from urllib.parse import urlsplit, urlunsplit

from pydantic import SecretStr

from app.config import Settings, SettingsError, load_settings

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


def main() -> int:
    """Print the effective settings; exit 2 with one line per bad setting."""
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(exc, file=sys.stderr)
        return 2
    print(format_settings(settings))
    return 0


if __name__ == "__main__":
    sys.exit(main())
