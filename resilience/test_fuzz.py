"""Schemathesis against the live OpenAPI schema: no 5xx, every answer as the schema describes it."""

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

from harness.api import PROBLEM_JSON, bearer, create_user, login
from harness.launcher import Launcher
from harness.processes import spawn, stop

# Bounded and reproducible: a fixed seed and a fixed number of examples per operation.
MAX_EXAMPLES = "20"
SEED = "20261124"
FUZZ_BOUND_SECONDS = 240.0
# The checks our contract promises. The three conformance checks fail the run on any
# answer the schema does not describe: a status it does not list for the operation, a
# content type it does not give for that status, or a body that its schema refuses.
CHECKS = ",".join(
    (
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_schema_conformance",
        "negative_data_rejection",
    )
)


def _fuzz_env(home: Path) -> dict[str, str]:
    # A bare environment: the fuzzer needs nothing of the caller's (and no proxy settings).
    return {"PATH": os.environ.get("PATH", ""), "HOME": str(home), "NO_COLOR": "1"}


def _har_responses(path: Path) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = json.loads(path.read_text())["log"]["entries"]
    return entries


async def test_fuzzed_requests_get_no_5xx_and_answers_the_schema_describes(
    launch: Launcher, tmp_path: Path
) -> None:
    service = await launch.service()
    async with service.client() as client:
        user = await create_user(client, "fuzz")
        response = await login(client, user["email"])
    # Fuzzing without a token would only reach the 401s of the protected routes.
    assert response.status_code == 200, f"The fuzzer's user could not log in: {response.text}"
    token = bearer(response.json())["Authorization"]
    headers = ["--header", f"Authorization:{token}"]
    har = tmp_path / "fuzz.har"
    argv = [
        sys.executable,
        "-m",
        "schemathesis.cli",
        "run",
        f"{service.base_url}/openapi.json",
        *("--checks", CHECKS),
        *("--max-examples", MAX_EXAMPLES, "--seed", SEED),
        *("--phases", "examples,coverage,fuzzing,stateful"),
        *("--request-timeout", "10", "--workers", "1"),
        *("--report", "har", "--report-har-path", str(har)),
        *headers,
    ]
    fuzzer = await spawn(
        "schemathesis",
        argv,
        cwd=tmp_path,
        env=_fuzz_env(tmp_path),
        log_path=tmp_path / "schemathesis.log",
    )
    try:
        exit_code = await asyncio.wait_for(fuzzer.process.wait(), FUZZ_BOUND_SECONDS)
    finally:
        await stop(fuzzer, grace_seconds=5)
    assert exit_code == 0, fuzzer.log_tail(120)

    entries = _har_responses(har)
    assert entries, "Schemathesis sent no request."
    not_problem = []
    for entry in entries:
        status = entry["response"]["status"]
        content_type = next(
            (
                h["value"]
                for h in entry["response"]["headers"]
                if h["name"].lower() == "content-type"
            ),
            "",
        )
        if status >= 400 and not content_type.startswith(PROBLEM_JSON):
            not_problem.append(
                f"{entry['request']['method']} {entry['request']['url']} -> {status} {content_type}"
            )
    assert not not_problem, not_problem[:20]
