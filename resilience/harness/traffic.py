"""Bounded concurrent traffic: every loop stops at a request count AND a deadline."""

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import httpx


@dataclass(frozen=True)
class Outcome:
    """What one request got: a response, or the transport error that replaced it."""

    label: str
    status: int | None
    content_type: str
    body: str
    error: str | None = None
    email: str | None = None

    @property
    def answered(self) -> bool:
        """True when an HTTP response came back at all."""
        return self.status is not None

    def describe(self) -> str:
        """One line for an assertion message."""
        if self.status is None:
            return f"{self.label}: no answer ({self.error})"
        return f"{self.label}: {self.status} {self.content_type} {self.body[:300]}"


async def send(
    label: str,
    request: Awaitable[httpx.Response],
    *,
    email: str | None = None,
) -> Outcome:
    """Await one request and record its outcome; a transport error is an outcome too."""
    try:
        response = await request
    except httpx.TimeoutException as error:
        # A hang is what the resilience cases exist to catch: name it plainly.
        return Outcome(
            label, None, "", "", error=f"timed out ({type(error).__name__})", email=email
        )
    except httpx.TransportError as error:
        return Outcome(label, None, "", "", error=type(error).__name__, email=email)
    return Outcome(
        label,
        response.status_code,
        response.headers.get("content-type", ""),
        response.text,
        email=email,
    )


Step = Callable[[int], Awaitable[Outcome]]


async def run_load(
    step: Step, *, clients: int, max_requests: int, max_seconds: float, stop: asyncio.Event | None
) -> list[Outcome]:
    """Run `clients` loops calling step(n) until max_requests, max_seconds or `stop`."""
    outcomes: list[Outcome] = []
    counter = 0
    loop = asyncio.get_running_loop()
    deadline = loop.time() + max_seconds

    async def client_loop() -> None:
        nonlocal counter
        while counter < max_requests and loop.time() < deadline:
            if stop is not None and stop.is_set():
                return
            counter += 1
            outcomes.append(await step(counter))

    await asyncio.gather(*(client_loop() for _ in range(clients)))
    return outcomes
