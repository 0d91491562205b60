"""Access tokens: every way a token can be bad gets the same 401, never a 500."""

import asyncio
import base64
import hashlib
import hmac
import json
import uuid
import warnings
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import jwt
import pytest
from pydantic import SecretStr
from tests.conftest import HeadersFactory, TokenFactory, UserFactory, assert_problem, bearer

from app.config import Settings
from app.security import decode_access_token

ME = "/api/v1/users/me"
INVALID_TOKEN_CHALLENGE = 'Bearer error="invalid_token"'


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _claims(settings: Settings, user_id: uuid.UUID, session_id: uuid.UUID) -> dict[str, Any]:
    """Claims of a good token: each case below spoils exactly one thing."""
    now = datetime.now(UTC)
    return {
        "sub": str(user_id),
        "sid": str(session_id),
        "typ": "access",
        "jti": uuid.uuid4().hex,
        "iat": now,
        "nbf": now,
        "exp": now + timedelta(minutes=5),
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
    }


def _sign(settings: Settings, claims: dict[str, Any], algorithm: str = "HS256") -> str:
    with warnings.catch_warnings():
        # An attacker re-signing with HS512 uses a key shorter than PyJWT likes.
        warnings.simplefilter("ignore", jwt.InsecureKeyLengthWarning)
        return jwt.encode(claims, settings.secret_key.get_secret_value(), algorithm=algorithm)


def _unsigned(claims: dict[str, Any]) -> str:
    payload = json.loads(json.dumps(claims, default=lambda t: int(t.timestamp())))
    header = _b64(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    return f"{header}.{_b64(json.dumps(payload).encode())}."


def _rs256_header_with_hmac(settings: Settings, claims: dict[str, Any]) -> str:
    """Algorithm confusion: an RS256 header over an HMAC made with the shared secret."""
    payload = json.dumps(claims, default=lambda t: int(t.timestamp())).encode()
    signing_input = f"{_b64(json.dumps({'alg': 'RS256', 'typ': 'JWT'}).encode())}.{_b64(payload)}"
    key = settings.secret_key.get_secret_value().encode()
    signature = hmac.new(key, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(signature)}"


def _tampered(settings: Settings, claims: dict[str, Any]) -> str:
    header, payload, signature = _sign(settings, claims).split(".")
    flipped = ("A" if signature[0] != "A" else "B") + signature[1:]
    return f"{header}.{payload}.{flipped}"


def _with(**changes: Any) -> Callable[[Settings, dict[str, Any]], str]:
    """Sign the claims with these changes; a callable change is called when the token is made."""

    def make(settings: Settings, claims: dict[str, Any]) -> str:
        made = {name: value() if callable(value) else value for name, value in changes.items()}
        return _sign(settings, claims | made)

    return make


def _without(name: str) -> Callable[[Settings, dict[str, Any]], str]:
    def make(settings: Settings, claims: dict[str, Any]) -> str:
        return _sign(settings, {k: v for k, v in claims.items() if k != name})

    return make


# Times as of the test, not of the import: a run that imports this module and
# tests minutes later (mutmut does) would otherwise get a "future" in the past.
def _past(seconds: int) -> Callable[[], datetime]:
    return lambda: datetime.now(UTC) - timedelta(seconds=seconds)


def _future(seconds: int) -> Callable[[], datetime]:
    return lambda: datetime.now(UTC) + timedelta(seconds=seconds)


BAD_TOKENS: dict[str, Callable[[Settings, dict[str, Any]], str]] = {
    "expired": _with(exp=_past(60), iat=_past(120), nbf=_past(120)),
    "not yet valid (nbf)": _with(nbf=_future(120)),
    "issued in the future (iat)": _with(iat=_future(120)),
    "tampered signature": _tampered,
    "alg none": lambda _settings, claims: _unsigned(claims),
    "alg switched to HS512 with the same key": lambda s, c: _sign(s, c, "HS512"),
    "RS256 header over an HMAC": _rs256_header_with_hmac,
    "signed with another key": lambda _s, c: jwt.encode(c, "x" * 64, algorithm="HS256"),
    "wrong issuer": _with(iss="someone-else"),
    "wrong audience": _with(aud="another-api"),
    "refresh type": _with(typ="refresh"),
    "subject not a uuid": _with(sub="admin"),
    "subject of the wrong type": _with(sub=12345),
    "session id not a uuid": _with(sid=["x"]),
    "subject is someone else": _with(sub=str(uuid.uuid4())),
    "unknown session": _with(sid=str(uuid.uuid4())),
    **{
        f"missing {name}": _without(name)
        for name in ("sub", "sid", "typ", "jti", "iat", "nbf", "exp", "iss", "aud")
    },
}


@pytest.mark.parametrize("make_token", BAD_TOKENS.values(), ids=BAD_TOKENS.keys())
async def test_bad_access_token_returns_the_same_401_with_invalid_token_challenge(
    client: httpx.AsyncClient,
    settings: Settings,
    user: UserFactory,
    token_pair: TokenFactory,
    make_token: Callable[[Settings, dict[str, Any]], str],
) -> None:
    owner = await user()
    good = await token_pair(owner)
    session_id = uuid.UUID(good.refresh_token.split(".")[0])
    # The untouched claims are accepted: the one change is what gets the token refused.
    assert (await client.get(ME, headers=bearer(good.access_token))).status_code == 200
    token = make_token(settings, _claims(settings, owner.id, session_id))
    r = await client.get(ME, headers=bearer(token))
    body = assert_problem(r, 401)
    assert r.headers["www-authenticate"] == INVALID_TOKEN_CHALLENGE
    assert body["detail"] == "The bearer token is invalid, expired or revoked."


async def test_every_bad_token_gets_a_byte_identical_body_apart_from_request_id(
    client: httpx.AsyncClient, user: UserFactory, token_pair: TokenFactory
) -> None:
    owner = await user()
    pair = await token_pair(owner)
    bodies = set()
    for token in ["garbage", pair.refresh_token, pair.access_token[:-3] + "abc", "a.b.c"]:
        r = await client.get(ME, headers=bearer(token))
        body = assert_problem(r, 401)
        del body["request_id"]
        bodies.add(json.dumps(body, sort_keys=True))
    assert len(bodies) == 1, bodies


async def test_refresh_token_used_as_access_token_returns_401(
    client: httpx.AsyncClient, user: UserFactory, token_pair: TokenFactory
) -> None:
    pair = await token_pair(await user())
    r = await client.get(ME, headers=bearer(pair.refresh_token))
    assert_problem(r, 401)
    assert r.headers["www-authenticate"] == INVALID_TOKEN_CHALLENGE


async def test_access_token_used_as_refresh_token_returns_401(
    client: httpx.AsyncClient, user: UserFactory, token_pair: TokenFactory
) -> None:
    pair = await token_pair(await user())
    r = await client.post("/api/v1/auth/refresh", json={"refresh_token": pair.access_token})
    assert_problem(r, 401)


async def test_token_of_a_deleted_user_returns_401(
    client: httpx.AsyncClient, user: UserFactory, auth_headers: HeadersFactory
) -> None:
    owner = await user()
    headers = await auth_headers(owner)
    r = await client.delete(f"/api/v1/users/{owner.id}", headers=headers)
    assert r.status_code == 204, r.text
    assert_problem(await client.get(ME, headers=headers), 401)


@pytest.mark.parametrize(
    "authorization",
    ["Bearer", "Bearer ", "Bearer \u00e9\u00e9", "Bearer " + "x" * 10_000, "Bearer a b c"],
)
async def test_garbage_bearer_token_returns_401(
    client: httpx.AsyncClient, authorization: str
) -> None:
    r = await client.get(ME, headers={"Authorization": authorization.encode()})  # type: ignore[dict-item]
    assert_problem(r, 401)


async def test_a_bearer_token_after_several_spaces_is_accepted(
    client: httpx.AsyncClient, user: UserFactory, token_pair: TokenFactory
) -> None:
    # RFC 6750: one or more spaces between the scheme and the token (1*SP).
    pair = await token_pair(await user())
    r = await client.get(ME, headers={"Authorization": f"Bearer   {pair.access_token}"})
    assert r.status_code == 200, r.text


@pytest.mark.parametrize(
    "authorization", ["", "Token abc", "Basic dXNlcjpwYXNz", "abc.def.ghi", "Bearerabc"]
)
async def test_authorization_header_without_bearer_scheme_returns_401_with_bare_challenge(
    client: httpx.AsyncClient, authorization: str
) -> None:
    r = await client.get(ME, headers={"Authorization": authorization})
    body = assert_problem(r, 401)
    assert r.headers["www-authenticate"] == "Bearer"
    assert body["detail"] == "Authentication is required: send a bearer token."


async def test_a_token_verified_once_still_expires_on_time(settings: Settings) -> None:
    """The signature check is cached per token; the expiry is checked on every call."""
    user_id, session_id = uuid.uuid4(), uuid.uuid4()
    claims = _claims(settings, user_id, session_id)
    # PyJWT reads this process's clock, so the test does too. Five seconds: the
    # first check comes well before, however busy the machine.
    expires = datetime.now(UTC) + timedelta(seconds=5)
    claims["exp"] = expires
    token = _sign(settings, claims)
    strict = settings.model_copy(update={"jwt_leeway_seconds": 0})

    first = decode_access_token(strict, token)
    assert first is not None
    assert (first.user_id, first.session_id) == (user_id, session_id)
    # Past the expiry (a whole second more: exp is stored in whole seconds).
    await asyncio.sleep((expires - datetime.now(UTC)).total_seconds() + 1.05)
    assert decode_access_token(strict, token) is None


async def test_a_cached_token_is_refused_under_another_secret(settings: Settings) -> None:
    """The cache is keyed by the verifying settings too: a rotated secret refuses old tokens."""
    token = _sign(settings, _claims(settings, uuid.uuid4(), uuid.uuid4()))
    assert decode_access_token(settings, token) is not None
    rotated = settings.model_copy(update={"secret_key": SecretStr("r" * 40)})
    assert decode_access_token(rotated, token) is None
