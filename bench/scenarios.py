"""The benchmark's scenarios: which application, which request, how many connections."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Literal

import httpx
from load import Load
from seed import Seed, describe_answer

ME = "/api/v1/users/me"
LOGIN_PATH = "/api/v1/auth/token"
FORM = "application/x-www-form-urlencoded"
# Enough concurrent logins to keep every core hashing, few enough that a
# service which bounds its hashing need not refuse any: this measures capacity.
LOGIN_CONNECTIONS = 2 * (os.cpu_count() or 1)
# The storm offers far more logins than two cores can hash (about 14 a second).
STORM_CONNECTIONS = 64

Kind = Literal["read", "login", "storm"]
Who = Literal["user", "admin"]


class UnavailableError(Exception):
    """A scenario cannot run yet; the message says why."""


@dataclass(frozen=True)
class Scenario:
    """One measured case."""

    name: str
    title: str
    # Which of the run's applications answers: ceiling, ceiling_telemetry,
    # redis_reference, final, or final_uncached (final/ with its cache off).
    server: str
    path: str
    who: Who | None = None
    kind: Kind = "read"
    # None: the run's --connections (64 by default).
    connections: int | None = None


SCENARIOS = (
    Scenario("ceiling", "bare FastAPI `GET /ping` (the ceiling)", "ceiling", "/ping"),
    Scenario(
        "ceiling_telemetry",
        "bare FastAPI, OpenTelemetry hooks on (FastAPI's default)",
        "ceiling_telemetry",
        "/ping",
    ),
    Scenario(
        "redis_reference",
        "FastAPI + one Redis GET (the one-GET reference)",
        "redis_reference",
        "/user",
    ),
    Scenario(
        "redis_reference_256",
        "FastAPI + one Redis GET, 256 connections",
        "redis_reference",
        "/user",
        connections=256,
    ),
    Scenario("health_live", "final/ `GET /health/live`", "final", "/health/live"),
    Scenario("me_cached", "final/ `GET /users/me`, cache warm", "final", ME, who="user"),
    Scenario(
        "me_cached_256",
        "final/ `GET /users/me`, cache warm, 256 connections",
        "final",
        ME,
        who="user",
        connections=256,
    ),
    Scenario(
        "me_uncached",
        "final/ `GET /users/me`, cache off (PostgreSQL)",
        "final_uncached",
        ME,
        who="user",
    ),
    Scenario(
        "me_uncached_256",
        "final/ `GET /users/me`, cache off, 256 connections",
        "final_uncached",
        ME,
        who="user",
        connections=256,
    ),
    Scenario(
        "user_by_id_admin",
        "final/ `GET /users/{id}` as admin",
        "final",
        "/api/v1/users/{user_id}",
        who="admin",
    ),
    Scenario(
        "login",
        f"final/ `POST /auth/token`, {LOGIN_CONNECTIONS} connections (RPS: successful logins)",
        "final",
        LOGIN_PATH,
        kind="login",
        connections=LOGIN_CONNECTIONS,
    ),
    Scenario(
        "login_storm",
        f"final/ `GET /health/live` while {STORM_CONNECTIONS} connections log in",
        "final",
        "/health/live",
        kind="storm",
    ),
)
BY_NAME = {scenario.name: scenario for scenario in SCENARIOS}


def build_load(
    scenario: Scenario,
    base_url: str,
    seed: Seed | None,
    *,
    connections: int,
    threads: int,
    seconds: int,
) -> Load:
    """Return the wrk load of a scenario; raise UnavailableError if final/ cannot serve it."""
    path = scenario.path
    authorization = None
    if scenario.who is not None:
        token = _needed(seed, f"{scenario.who}_token")
        authorization = f"Bearer {token}"
    if "{user_id}" in path:
        path = path.format(user_id=_needed(seed, "user_id"))
    connections = scenario.connections or connections
    if scenario.kind == "login":
        return login_load(base_url, seed, connections=connections, threads=threads, seconds=seconds)
    return Load(
        url=base_url + path,
        connections=connections,
        threads=threads,
        seconds=seconds,
        authorization=authorization,
    )


def login_load(
    base_url: str, seed: Seed | None, *, connections: int, threads: int, seconds: int
) -> Load:
    """Return a load of logins as the benchmark user, counting each status."""
    if seed is None:
        raise UnavailableError("final/ was not seeded.")
    # A login that failed once during seeding will not start working under load.
    _needed(seed, "user_token")
    return Load(
        url=base_url + LOGIN_PATH,
        connections=connections,
        threads=threads,
        seconds=seconds,
        method="POST",
        body=seed.login_form(),
        content_type=FORM,
        count_statuses=True,
    )


def _needed(seed: Seed | None, what: str) -> str:
    """Return a seeded value, or raise UnavailableError with the reason it is missing."""
    value = getattr(seed, what, None) if seed is not None else None
    if value:
        return str(value)
    if seed is None:
        raise UnavailableError("final/ was not seeded.")
    who = what.removesuffix("_token").removesuffix("_id")
    reason = seed.problems.get(what) or seed.problems.get(who) or f"no {what} was seeded"
    raise UnavailableError(reason)


def probe(load: Load) -> None:
    """Send the load's request once; raise UnavailableError unless it answers 2xx."""
    headers = {}
    if load.authorization:
        headers["Authorization"] = load.authorization
    if load.content_type:
        headers["Content-Type"] = load.content_type
    try:
        answer = httpx.request(
            load.method, load.url, headers=headers, content=load.body, timeout=30.0
        )
    except httpx.HTTPError as exc:
        raise UnavailableError(f"{load.method} {load.url} failed: {exc}") from None
    if not answer.is_success:
        path = httpx.URL(load.url).path
        raise UnavailableError(describe_answer(f"{load.method} {path}", answer))
