"""The OpenAPI schema as the contract: every error a route can answer, in its real shape."""

from collections.abc import Callable, Iterator
from typing import Any

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, iter_route_contexts
from pydantic import BaseModel, ConfigDict, Field

from app.deps import (
    check_hashing_capacity,
    get_admin_user,
    get_authenticated,
    get_password_hasher,
    get_session,
)
from app.errors import PROBLEM_JSON
from app.limit_policy import enforce_api_limit

PROBLEM_REF = "#/components/schemas/Problem"
VALIDATION_PROBLEM_REF = "#/components/schemas/ValidationProblem"


class Problem(BaseModel):
    """An RFC 9457 problem: the body of every 4xx and 5xx answer."""

    # Extension members are allowed (RFC 9457): /health/ready's 503 adds `checks`.
    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={
            "examples": [
                {
                    "type": "about:blank",
                    "title": "Unauthorized",
                    "status": 401,
                    "detail": "The bearer token is invalid, expired or revoked.",
                    "instance": "/api/v1/users/me",
                    "request_id": "5b1f0c8e9d2a4c7e8f3b6a1d0e9c8b7a",
                }
            ]
        },
    )

    type: str = Field(description="`about:blank`: the status and title say it all.")
    title: str = Field(description="The status's reason phrase.")
    status: int
    detail: str = Field(description="What went wrong, as a sentence for a person.")
    instance: str = Field(description="The request's path.")
    request_id: str = Field(description="The X-Request-ID: the logs' lines for this request.")


class FieldError(BaseModel):
    """Where a request is invalid, and why; never the value that was sent."""

    loc: list[str | int] = Field(description="Where: `body`, `query`, `path`, then the field.")
    msg: str
    type: str


class ValidationProblem(Problem):
    """The 422: a problem with one entry per invalid field."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "type": "about:blank",
                    "title": "Unprocessable Entity",
                    "status": 422,
                    "detail": "The request is invalid; see errors.",
                    "instance": "/api/v1/users",
                    "request_id": "5b1f0c8e9d2a4c7e8f3b6a1d0e9c8b7a",
                    "errors": [
                        {
                            "loc": ["body", "password"],
                            "msg": "String should have at least 8 characters",
                            "type": "string_too_short",
                        }
                    ],
                }
            ]
        }
    )

    errors: list[FieldError]


# What a dependency makes a route able to answer, and why. Read off the
# dependencies rather than listed per route, so a new route gets them too.
_ANSWERS_OF_DEPENDENCIES: list[tuple[Callable[..., Any], int, str]] = [
    (get_authenticated, 401, "No bearer token, or one that is invalid, expired or revoked."),
    (get_authenticated, 429, "Too many requests from this client (Retry-After says when)."),
    (enforce_api_limit, 429, "Too many requests from this client (Retry-After says when)."),
    (get_admin_user, 403, "Only administrators may do this."),
    (get_session, 503, "The database is unavailable; try again shortly."),
    (get_authenticated, 503, "The database is unavailable; try again shortly."),
    (
        get_password_hasher,
        503,
        "Too many password checks are in progress (Retry-After: 1), or the database is down.",
    ),
    (check_hashing_capacity, 503, "Too many password checks are in progress (Retry-After: 1)."),
]
_HEADERS = {
    401: {
        "WWW-Authenticate": {
            "description": "`Bearer`, as RFC 6750 asks.",
            "schema": {"type": "string"},
        }
    },
    429: {
        "Retry-After": {
            "description": "Seconds to wait before trying again.",
            "schema": {"type": "integer"},
        }
    },
}

# Shown in Swagger UI's Authorize dialog.
AUTHORIZE_HELP = (
    "Log in with the OAuth2 password flow: **username** is your account's email "
    "address, **password** its password. Leave client_id and client_secret empty: "
    "this service does not use them. Sign up first with `POST /api/v1/users`. A wrong "
    "email or password shows here as `Auth Error Error: Unauthorized`."
)
USER_EXAMPLE = {
    "id": "3f0e5d2c-8a4b-4c1d-9e7f-6a5b4c3d2e1f",
    "email": "ada@example.com",
    "full_name": "Ada Lovelace",
    "is_active": True,
    "is_admin": False,
    "created_at": "2026-12-02T10:00:00Z",
    "updated_at": "2026-12-02T10:00:00Z",
}


def _calls(dependant: Dependant) -> Iterator[Callable[..., Any]]:
    """Every function a route depends on, however deep."""
    for sub in dependant.dependencies:
        if sub.call is not None:
            yield sub.call
        yield from _calls(sub)


def _error_answers(route: APIRoute) -> dict[int, str]:
    """The error statuses a route's dependencies and body make it able to answer."""
    calls = set(_calls(route.dependant))
    answers = {
        status: description
        for dependency, status, description in _ANSWERS_OF_DEPENDENCIES
        if dependency in calls
    }
    if route.dependant.body_params:
        answers[400] = "The body could not be parsed (JSON that is not JSON, say)."
        answers[413] = "The request body is larger than the limit (1 MiB)."
    return answers


def _problem_response(status: int, description: str) -> dict[str, Any]:
    ref = VALIDATION_PROBLEM_REF if status == 422 else PROBLEM_REF
    response: dict[str, Any] = {
        "description": description,
        "content": {PROBLEM_JSON: {"schema": {"$ref": ref}}},
    }
    if status in _HEADERS:
        response["headers"] = _HEADERS[status]
    return response


def _describe_errors(schema: dict[str, Any], routes: list[APIRoute]) -> None:
    """Give every error response of every operation the problem+json schema."""
    for route in routes:
        for method in route.methods or ():
            responses = schema["paths"][route.path_format][method.lower()]["responses"]
            for status, description in _error_answers(route).items():
                # What the route itself declares comes first: it knows its own case.
                responses.setdefault(str(status), {"description": description})
            for status, response in responses.items():
                if int(status) < 400:
                    continue
                description = response["description"]
                if status == "422":
                    description = "The request is invalid: `errors` says where and why."
                responses[status] = _problem_response(int(status), description)
            # In status order, as Swagger UI and ReDoc list them.
            ordered = sorted(responses.items(), key=lambda item: item[0])
            responses.clear()
            responses.update(ordered)


def _add_components(schema: dict[str, Any]) -> None:
    components = schema.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    # FastAPI's own 422 shape ({"detail": [...]}), which this service never answers.
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
    for model in (Problem, FieldError, ValidationProblem):
        schemas[model.__name__] = model.model_json_schema(
            ref_template="#/components/schemas/{model}"
        )
    # Swagger UI would otherwise make up an example, with "is_admin": true.
    schemas["UserPublic"]["examples"] = [USER_EXAMPLE]
    for scheme in components.get("securitySchemes", {}).values():
        if scheme.get("type") == "oauth2":
            scheme["description"] = AUTHORIZE_HELP


def install_openapi(app: FastAPI) -> None:
    """Make app.openapi() return the schema the service answers by (FastAPI's extension hook)."""
    generate = app.openapi
    described: list[dict[str, Any]] = []  # the schema already worked on, if any

    def openapi() -> dict[str, Any]:
        schema = generate()  # FastAPI caches it until the routes change
        if not described or described[0] is not schema:
            # Included routers nest their routes: the contexts are the flat list get_openapi reads.
            routes = [
                context.original_route
                for context in iter_route_contexts(app.routes)
                if isinstance(context.original_route, APIRoute)
                and context.original_route.include_in_schema
            ]
            _describe_errors(schema, routes)
            _add_components(schema)
            described[:] = [schema]
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
