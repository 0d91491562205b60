"""Text PostgreSQL cannot store, or too much of it, in every text field: a 4xx, never a 500."""

import json
import uuid
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from tests.conftest import HeadersFactory, UserFactory, assert_problem

USERS = "/api/v1/users"
AUTH = "/api/v1/auth"
GOOD_PASSWORD = "correct horse battery"

# PostgreSQL's text cannot hold NUL; a lone surrogate is a Python str but no
# UTF-8; a megabyte (just under the 1 MiB body limit) is far past every bound.
BAD_TEXTS = {
    "nul": "a\x00b@example.com",
    "lone-surrogate": "\ud800@example.com",
    "a-megabyte": "é" * 500_000,
}


def json_body(payload: dict[str, Any]) -> bytes:
    """Encode JSON as a client may: a lone surrogate as its \\u escape, the rest as UTF-8."""
    text = json.dumps(payload, ensure_ascii=False)
    try:
        return text.encode()
    except UnicodeEncodeError:
        return json.dumps(payload).encode()  # "\ud800" travels as an escape


def form_body(fields: dict[str, str]) -> bytes:
    """URL-encode a form, lone surrogates included (as the bytes a broken client sends)."""
    return "&".join(
        f"{name}={quote(value.encode('utf-8', 'surrogatepass'))}" for name, value in fields.items()
    ).encode()


def assert_refused(response: httpx.Response) -> dict[str, Any]:
    """A 4xx problem (RFC 9457), not a 5xx."""
    assert 400 <= response.status_code < 500, response.text
    return assert_problem(response, response.status_code)


def assert_refused_without_echo(response: httpx.Response, bad: str) -> None:
    """A 4xx problem, and the offending text nowhere in it."""
    assert_refused(response)
    assert bad[:20] not in response.text


# A URL is bounded by what clients and proxies accept: a kilobyte of the text.
def in_url(text: str) -> str:
    """Percent-encode the first kilobyte of a text, lone surrogates as their raw bytes."""
    return quote(text[:1000].encode("utf-8", "surrogatepass"))


@pytest.mark.parametrize("kind", BAD_TEXTS)
@pytest.mark.parametrize("field", ["email", "password", "full_name"])
async def test_signup_refuses_unstorable_text_in_every_field(
    client: httpx.AsyncClient, field: str, kind: str
) -> None:
    payload = {"email": "new@example.com", "password": GOOD_PASSWORD, "full_name": "Ada"}
    payload[field] = BAD_TEXTS[kind]

    response = await client.post(
        USERS, content=json_body(payload), headers={"content-type": "application/json"}
    )

    assert_refused_without_echo(response, BAD_TEXTS[kind])


@pytest.mark.parametrize("kind", BAD_TEXTS)
@pytest.mark.parametrize("field", ["username", "password"])
async def test_login_refuses_unstorable_text_in_every_field(
    client: httpx.AsyncClient, user: UserFactory, field: str, kind: str
) -> None:
    await user("ada@example.com")
    fields = {"username": "ada@example.com", "password": GOOD_PASSWORD}
    fields[field] = BAD_TEXTS[kind]

    response = await client.post(
        f"{AUTH}/token",
        content=form_body(fields),
        headers={"content-type": "application/x-www-form-urlencoded"},
    )

    assert_refused_without_echo(response, BAD_TEXTS[kind])


@pytest.mark.parametrize("kind", BAD_TEXTS)
@pytest.mark.parametrize("route", ["refresh", "logout"])
async def test_refresh_and_logout_refuse_unstorable_refresh_tokens(
    client: httpx.AsyncClient,
    user: UserFactory,
    auth_headers: HeadersFactory,
    route: str,
    kind: str,
) -> None:
    headers = await auth_headers(await user())

    response = await client.post(
        f"{AUTH}/{route}",
        content=json_body({"refresh_token": f"{uuid.uuid4()}.{BAD_TEXTS[kind]}"}),
        headers={**headers, "content-type": "application/json"},
    )

    assert_refused_without_echo(response, BAD_TEXTS[kind])


@pytest.mark.parametrize("kind", BAD_TEXTS)
@pytest.mark.parametrize("field", ["full_name", "password", "current_password"])
async def test_updating_oneself_refuses_unstorable_text_in_every_field(
    client: httpx.AsyncClient,
    user: UserFactory,
    auth_headers: HeadersFactory,
    field: str,
    kind: str,
) -> None:
    headers = await auth_headers(await user())
    payload = {"password": "a new good password", "current_password": GOOD_PASSWORD}
    payload[field] = BAD_TEXTS[kind]

    response = await client.patch(
        f"{USERS}/me",
        content=json_body(payload),
        headers={**headers, "content-type": "application/json"},
    )

    assert_refused_without_echo(response, BAD_TEXTS[kind])


@pytest.mark.parametrize("kind", BAD_TEXTS)
async def test_an_admin_update_refuses_an_unstorable_name(
    client: httpx.AsyncClient, user: UserFactory, auth_headers: HeadersFactory, kind: str
) -> None:
    headers = await auth_headers(await user(is_admin=True))
    target = await user()

    response = await client.patch(
        f"{USERS}/{target.id}",
        content=json_body({"full_name": BAD_TEXTS[kind]}),
        headers={**headers, "content-type": "application/json"},
    )

    assert_refused_without_echo(response, BAD_TEXTS[kind])


@pytest.mark.parametrize("kind", BAD_TEXTS)
async def test_the_user_list_refuses_an_unstorable_cursor(
    client: httpx.AsyncClient, user: UserFactory, auth_headers: HeadersFactory, kind: str
) -> None:
    headers = await auth_headers(await user(is_admin=True))
    response = await client.get(f"{USERS}?cursor={in_url(BAD_TEXTS[kind])}", headers=headers)

    assert_refused_without_echo(response, BAD_TEXTS[kind])


@pytest.mark.parametrize("kind", BAD_TEXTS)
@pytest.mark.parametrize(
    ("method", "template"),
    [
        ("GET", USERS + "/{}"),
        ("PATCH", USERS + "/{}"),
        ("DELETE", USERS + "/{}"),
        ("DELETE", AUTH + "/sessions/{}"),
    ],
)
async def test_id_paths_refuse_unstorable_text(
    client: httpx.AsyncClient,
    user: UserFactory,
    auth_headers: HeadersFactory,
    method: str,
    template: str,
    kind: str,
) -> None:
    headers = await auth_headers(await user(is_admin=True))
    path = template.format(in_url(BAD_TEXTS[kind]))

    response = await client.request(method, path, headers=headers, json={})

    # The problem's `instance` is the request path, by contract: only the
    # validation errors must not repeat the text.
    body = assert_refused(response)
    assert BAD_TEXTS[kind][:20] not in json.dumps(body.get("errors", []), ensure_ascii=False)
