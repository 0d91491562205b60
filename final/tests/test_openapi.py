"""The OpenAPI schema and the pages that show it: what a learner reads in the browser."""

import re
from typing import Annotated, Any

import httpx
import pytest
from fastapi import Depends, FastAPI
from tests.conftest import assert_problem

from app.deps import AuthenticatedUser, BearerTokenCheck, oauth2_scheme

PROBLEM = {"$ref": "#/components/schemas/Problem"}
VALIDATION_PROBLEM = {"$ref": "#/components/schemas/ValidationProblem"}


@pytest.fixture
async def schema(client: httpx.AsyncClient) -> dict[str, Any]:
    r = await client.get("/openapi.json")
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def responses(schema: dict[str, Any], method: str, path: str) -> dict[str, Any]:
    found: dict[str, Any] = schema["paths"][path][method]["responses"]
    return found


def test_every_error_response_is_the_one_problem_component(schema: dict[str, Any]) -> None:
    errors = [
        (path, method, status, response)
        for path, operations in schema["paths"].items()
        for method, operation in operations.items()
        for status, response in operation["responses"].items()
        if int(status) >= 400
    ]
    assert len(errors) > 40
    for path, method, status, response in errors:
        expected = VALIDATION_PROBLEM if status == "422" else PROBLEM
        assert response["content"] == {"application/problem+json": {"schema": expected}}, (
            method,
            path,
            status,
        )
    components = schema["components"]["schemas"]
    assert "HTTPValidationError" not in components
    assert components["ValidationProblem"]["properties"]["errors"]["type"] == "array"


@pytest.mark.parametrize(
    ("method", "path", "statuses"),
    [
        ("post", "/api/v1/users", {"201", "400", "409", "413", "422", "429", "503"}),
        ("get", "/api/v1/users/me", {"200", "401", "404", "429", "503"}),
        ("get", "/api/v1/users", {"200", "401", "403", "422", "429", "503"}),
        ("delete", "/api/v1/users/{user_id}", {"204", "401", "404", "409", "422", "429", "503"}),
        ("post", "/api/v1/auth/token", {"200", "400", "401", "413", "422", "429", "503"}),
        ("get", "/health/ready", {"200", "503"}),
    ],
)
def test_routes_list_the_statuses_they_can_answer(
    schema: dict[str, Any], method: str, path: str, statuses: set[str]
) -> None:
    assert set(responses(schema, method, path)) == statuses


def test_login_503_is_described_as_what_it_is(schema: dict[str, Any]) -> None:
    description = responses(schema, "post", "/api/v1/auth/token")["503"]["description"]
    assert "password checks" in description


def test_401_and_429_document_their_headers(schema: dict[str, Any]) -> None:
    me = responses(schema, "get", "/api/v1/users/me")
    assert "WWW-Authenticate" in me["401"]["headers"]
    assert "Retry-After" in me["429"]["headers"]


def test_the_user_example_is_not_an_admin(schema: dict[str, Any]) -> None:
    (example,) = schema["components"]["schemas"]["UserPublic"]["examples"]
    assert example["is_admin"] is False
    assert set(example) == set(schema["components"]["schemas"]["UserPublic"]["properties"])


def test_the_authorize_dialog_says_username_is_the_email(schema: dict[str, Any]) -> None:
    (scheme,) = schema["components"]["securitySchemes"].values()
    assert scheme["flows"]["password"]["tokenUrl"] == "/api/v1/auth/token"
    assert "email" in scheme["description"]
    assert "client_id" in scheme["description"]


def test_a_route_behind_the_token_check_is_documented_with_the_oauth2_scheme() -> None:
    # Built here, not app.deps's instance: that one is made on import, before a
    # mutation run switches a mutant on, so it cannot show a change to the class.
    check = BearerTokenCheck(oauth2_scheme)
    probe = FastAPI()

    @probe.get("/probe")
    async def probe_route(caller: Annotated[AuthenticatedUser, Depends(check)]) -> None:
        """A route behind the check."""

    schema = probe.openapi()
    assert schema["paths"]["/probe"]["get"]["security"] == [{"OAuth2PasswordBearer": []}]
    (scheme,) = schema["components"]["securitySchemes"].values()
    assert scheme["type"] == "oauth2"
    assert scheme["flows"]["password"]["tokenUrl"] == "/api/v1/auth/token"


async def test_a_real_422_has_the_documented_members(
    client: httpx.AsyncClient, schema: dict[str, Any]
) -> None:
    body = assert_problem(await client.post("/api/v1/users", json={"email": "x"}), 422)
    documented = schema["components"]["schemas"]["ValidationProblem"]
    assert set(documented["required"]) <= set(body)
    assert set(body["errors"][0]) == set(
        schema["components"]["schemas"]["FieldError"]["properties"]
    )


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
async def test_docs_pages_load_only_this_services_files(
    client: httpx.AsyncClient, page: str
) -> None:
    r = await client.get(page)
    assert r.status_code == 200, r.text
    assert "http" not in " ".join(re.findall(r'(?:src|href)="([^"]*)"', r.text))
    policy = r.headers["content-security-policy"]
    assert "default-src 'self'" in policy
    assert "script-src 'self' 'sha256-" in policy or page == "/redoc"
    for asset in re.findall(r'(?:src|href)="(/docs-assets/[^"]*)"', r.text):
        served = await client.get(asset)
        assert served.status_code == 200, asset
        assert len(served.content) > 1000, asset
