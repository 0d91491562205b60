"""Requests generated from the app's OpenAPI schema, logged in: no 5xx, each answer as described.

Schemathesis reads /openapi.json and, per operation, generates requests that
fit the schema and requests that break it, then checks each answer: never a
5xx, a status the operation lists, the content type and the body its schema
gives, and a 4xx for data the schema refuses. It calls the app in process,
over ASGI, with the app's lifespan run, on the real pool (the fuzzer's user is
committed and deleted after). The examples are derandomized (the suite's
Hypothesis profile) and bounded per operation.
"""

import asyncio
from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from schemathesis import Case
from schemathesis.specs.openapi.checks import (
    allow_header_conformance,
    positive_data_acceptance,
    unsupported_method,
)
from tests.conftest import PASSWORD, bearer, delete_all_users, make_settings
from tests.lock_holder import execute_committed

from app.main import create_app

# The learner check of step 07: the tests its task "catch-fuzz" asks for.
pytestmark = pytest.mark.task("catch-fuzz")
FUZZER_EMAIL = "fuzzer@example.com"
# Per operation: enough to reach each field's edges, few enough for a test run.
EXAMPLES_PER_OPERATION = 25
# The checks left out, each for a reason the schema cannot express:
EXCLUDED_CHECKS = [
    # Data the schema accepts can still be refused, as the contract says: a cursor
    # string the service never issued (422), a new password without current_password.
    positive_data_acceptance,
    # /users/me is also /users/{user_id} with the id "me": a DELETE there is a
    # 422 (not a UUID) from the DELETE route, not a 405, and a 405's Allow at
    # /users/me names DELETE. (Allow once named only the first route's method:
    # this check found it, and app/errors.py now asks every route.)
    unsupported_method,
    allow_header_conformance,
]
# The Host Schemathesis's in-process client sends.
FUZZER_HOST = "testserver"
PROBLEM_JSON = "application/problem+json"


# The app under fuzzing, built at import: Schemathesis turns each operation of
# its schema into a test. Its pools connect on first use, once the database
# fixture has made the database. The general limit is out of the way: a 429
# would stop the fuzzer short of the routes.
FUZZED_APP = create_app(
    make_settings(rate_limit="100000/minute", trusted_hosts=["test", FUZZER_HOST])
)
schema = schemathesis.openapi.from_asgi("/openapi.json", FUZZED_APP)


@pytest.fixture(scope="module")
def fuzzer(database: str) -> Iterator[str]:
    """Sign the fuzzer up through the API and make it an admin; delete every user after."""
    signup = schema["/api/v1/users"]["POST"].Case(
        body={"email": FUZZER_EMAIL, "password": PASSWORD}
    )
    created = signup.call()
    assert created.status_code == 201, created.text
    # An admin reaches every route, the listing and its cursors included.
    promote = "UPDATE users SET is_admin = true WHERE email = :email"
    asyncio.run(execute_committed(database, promote, email=FUZZER_EMAIL))
    yield FUZZER_EMAIL
    asyncio.run(delete_all_users(database))


@pytest.fixture
def fuzzer_headers(fuzzer: str) -> dict[str, str]:
    """A fresh session's Authorization header for each operation (one may log it out)."""
    login = (
        schema["/api/v1/auth/token"]["POST"]
        .Case(
            body={"username": fuzzer, "password": PASSWORD},
            media_type="application/x-www-form-urlencoded",
        )
        .call()
    )
    # Fuzzing without a token would only ever reach the protected routes' 401s.
    if login.status_code != 200:
        pytest.fail(f"The fuzzer could not log in ({login.status_code}): {login.text}")
    return bearer(login.json()["access_token"])


@schema.parametrize()
# One session per operation, shared by its examples, on purpose: the health
# check warns of fixtures that are not reset between examples.
@hypothesis_settings(
    max_examples=EXAMPLES_PER_OPERATION,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
def test_no_generated_request_gets_a_5xx_or_an_answer_the_schema_does_not_describe(
    case: Case, fuzzer_headers: dict[str, str]
) -> None:
    response = case.call(headers=fuzzer_headers)
    # Not a server error, a listed status, its content type, a body its schema accepts,
    # and a 4xx for whatever the schema refuses.
    case.validate_response(response, excluded_checks=EXCLUDED_CHECKS)
    if response.status_code >= 400:
        # Every error is RFC 9457 problem+json (headers are lists: a header may repeat).
        assert response.headers.get("content-type") == [PROBLEM_JSON], response.text
