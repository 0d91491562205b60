"""Pure ASGI middleware: BaseHTTPMiddleware breaks context variables and costs throughput.

Two layers, not one per concern: each layer is another coroutine and another
wrapped `send` on every request, a few microseconds apiece, and seven of them
cost `/health/live` about half its time (docs/performance.md). The outer layer
observes every request; the inner one guards the app.
"""

import logging
import re
import time
import uuid
from collections.abc import Sequence

from fastapi import FastAPI
from prometheus_client import Counter, Histogram
from starlette.datastructures import Headers
from starlette.middleware.cors import CORSMiddleware
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.config import DEFAULT_MAX_BODY_BYTES, Settings
from app.errors import internal_error_response, problem_response
from app.logging import request_id_var
from app.metrics import Metrics

__all__ = [
    "DEFAULT_MAX_BODY_BYTES",  # defined in app.config, the MAX_BODY_BYTES setting's default
    "ProblemCORSMiddleware",
    "RequestGuardMiddleware",
    "RequestObserverMiddleware",
    "install_middleware",
    "request_id_var",  # defined in app.logging, where the log filter reads it
]

access_logger = logging.getLogger("app.access")
error_logger = logging.getLogger("app.errors")

# Echo a client's id only if it is short and harmless in logs and headers.
_SANE_REQUEST_ID = re.compile(rb"[A-Za-z0-9._-]{1,128}")
_SECURITY_HEADERS = (
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
)
# The methods a metric label may name. Under uvicorn's h11 server any token is
# a method: each made-up one would add series per route and status, unbounded.
_METRIC_METHODS = frozenset(
    ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT")
)
# No Server-Timing under these paths: on a login it would give the password
# check's time to a tenth of a millisecond, free of network noise, which is the
# measurement a timing attack on accounts needs.
_UNTIMED_PATH_PREFIXES = ("/api/v1/auth/",)
# Only over HTTPS: over plain HTTP browsers ignore it, and it would pin a
# development host to HTTPS. Behind a proxy, uvicorn's --proxy-headers sets the scheme.
# No includeSubDomains: that would bind every sibling service to HTTPS too.
_HSTS = (b"strict-transport-security", b"max-age=31536000")


# --8<-- [start:observer]
class RequestObserverMiddleware:
    """Outermost: the request id, the headers every response carries, a log line and metrics.

    Outside everything that can answer, so every status (400, 413, 500) gets
    the headers, a log line and a metrics observation.
    """

    def __init__(self, app: ASGIApp, metrics: Metrics, routes: Sequence[BaseRoute]) -> None:
        self.app = app
        self.metrics = metrics
        self.routes = routes  # the app's list: routes included later still appear
        self._templates_by_endpoint: dict[object, str] | None = None
        # Labelled children, made once per (method, route, status): labels() costs microseconds.
        self._instruments: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = _request_id_from(scope)
        extra = [(b"x-request-id", request_id.encode()), *_SECURITY_HEADERS]
        if scope["scheme"] == "https":
            extra.append(_HSTS)
        timed = not scope["path"].startswith(_UNTIMED_PATH_PREFIXES)
        status = 500  # what the client sees if the app dies before answering

        async def send_with_headers(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = [*message.get("headers", ()), *extra]
                if timed:
                    # Server-Timing: the app's time to first byte, shown by browser dev tools.
                    duration_ms = (time.perf_counter() - started) * 1000
                    headers.append((b"server-timing", f"app;dur={duration_ms:.1f}".encode()))
                message["headers"] = headers
            await send(message)

        # Every log line written while serving this request carries its id.
        token = request_id_var.set(request_id)
        try:
            await self.app(scope, receive, send_with_headers)
        finally:
            self._observe(scope, status, time.perf_counter() - started)
            request_id_var.reset(token)

    def _observe(self, scope: Scope, status: int, duration: float) -> None:
        # The route template ("/api/v1/users/{user_id}"), never the raw
        # path: it keeps label cardinality bounded and ids out of the logs.
        route = self._route_template(scope)
        method = scope["method"]
        key = (method if method in _METRIC_METHODS else "OTHER", route, status)
        instruments = self._instruments.get(key)
        if instruments is None:
            instruments = self._instruments[key] = (
                self.metrics.requests.labels(*key),
                self.metrics.request_duration.labels(*key),
            )
        instruments[0].inc()
        instruments[1].observe(duration)
        client = scope.get("client")
        access_logger.info(
            "Request handled.",
            extra={
                "method": method,
                "route": route,
                "status": status,
                "duration_ms": round(duration * 1000, 2),
                "client": client[0] if client else None,
            },
        )

    def _route_template(self, scope: Scope) -> str:
        """The matched route's template, from the scope the router filled in."""
        route = scope.get("route")
        if route is not None:
            return str(route.path_format)
        # FastAPI sets scope["route"] for its API routes only; plain Starlette
        # routes (/docs, /openapi.json) leave just their endpoint in the scope.
        endpoint = scope.get("endpoint")
        if endpoint is None:
            return "<unmatched>"
        if self._templates_by_endpoint is None:
            self._templates_by_endpoint = {
                getattr(r, "endpoint", None): getattr(r, "path_format", "") for r in self.routes
            }
        return self._templates_by_endpoint.get(endpoint, "<unmatched>")


def _request_id_from(scope: Scope) -> str:
    name: bytes
    value: bytes
    for name, value in scope["headers"]:
        if name == b"x-request-id":
            if _SANE_REQUEST_ID.fullmatch(value):
                return value.decode()
            break
    return uuid.uuid4().hex


# --8<-- [end:observer]


class ProblemCORSMiddleware(CORSMiddleware):
    """Starlette's CORS middleware, with its refused preflight answered as problem+json."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "OPTIONS":
            headers = Headers(scope=scope)
            if "origin" in headers and "access-control-request-method" in headers:
                response = self.preflight_response(request_headers=headers)
                if response.status_code == 400:
                    refused = bytes(response.body).decode().removeprefix("Disallowed CORS ")
                    kept = {
                        name: value
                        for name, value in response.headers.items()
                        if name.startswith("access-control-")
                    }
                    response = problem_response(
                        400,
                        f"This cross-origin request is not allowed (refused: {refused}).",
                        scope["path"],
                        kept,
                    )
                await response(scope, receive, send)
                return
        await super().__call__(scope, receive, send)


class _BodyTooLargeError(Exception):
    """Raised into the app when a streamed body passes the limit (the 413 is already sent)."""


# --8<-- [start:guard]
class RequestGuardMiddleware:
    """Innermost: refuse what this service does not serve; turn an unexpected error into a 500.

    - a Host header that is not ours: 400, before any work is done for it;
    - a body over max_bytes: 413, declared or counted as it streams in, never buffered;
    - an exception the app did not handle: a 500 problem+json, the traceback to
      the log. It then still flows through every layer above.
    """

    def __init__(
        self,
        app: ASGIApp,
        allowed_hosts: list[str],
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    ) -> None:
        self.app = app
        self.allow_any_host = "*" in allowed_hosts
        self.exact_hosts = {host.lower() for host in allowed_hosts if not host.startswith("*.")}
        # "*.example.com" allows every subdomain of example.com.
        self.host_suffixes = tuple(
            host[1:].lower() for host in allowed_hosts if host.startswith("*.")
        )
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        if not self._host_allowed(headers.get("host", "")):
            detail = "The Host header names a host this service does not serve."
            await problem_response(400, detail, scope["path"])(scope, receive, send)
            return
        declared = headers.get("content-length")
        # Refuse before reading a byte when the client says the body is too big.
        if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
            await self._too_large(scope)(scope, receive, send)
            return
        received = 0
        rejected = False
        response_started = False

        async def counting_receive() -> Message:
            nonlocal received, rejected
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    # Answer now: FastAPI turns any error while reading the
                    # body into a 400, which guarded_send then drops.
                    rejected = True
                    await self._too_large(scope)(scope, receive, send)
                    raise _BodyTooLargeError
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal response_started
            if rejected:
                return
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        # The server reads exactly Content-Length bytes: only a chunked body,
        # whose size nobody declared, needs counting as it arrives.
        chunked = "transfer-encoding" in headers
        try:
            await self.app(scope, counting_receive if chunked else receive, guarded_send)
        except _BodyTooLargeError:
            pass  # the 413 went out from counting_receive
        except Exception:
            # The traceback goes to the log, tagged with the request id; the client gets neither.
            error_logger.exception("Unhandled error while serving a request.")
            if response_started:
                raise  # too late for a 500: let the server close the connection
            await internal_error_response(scope["path"])(scope, receive, send)

    def _host_allowed(self, host: str) -> bool:
        if self.allow_any_host:
            return True
        host = _host_without_port(host)
        return host in self.exact_hosts or bool(
            self.host_suffixes and host.endswith(self.host_suffixes)
        )

    def _too_large(self, scope: Scope) -> ASGIApp:
        return problem_response(
            413,
            f"The request body is larger than the limit of {self.max_body_bytes} bytes.",
            scope["path"],
            # The rest of the body is still on the wire: do not reuse this connection.
            {"Connection": "close"},
        )


def _host_without_port(host: str) -> str:
    host = host.lower()
    if host.startswith("["):  # an IPv6 literal: [::1]:8000
        return host.partition("]")[0] + "]"
    return host.partition(":")[0]


# --8<-- [end:guard]


# --8<-- [start:install]
def install_middleware(app: FastAPI, settings: Settings, metrics: Metrics) -> None:
    """Install the middleware stack; the last one added runs first (outermost)."""
    # Innermost: its 400, 413 and 500 still flow through every layer above.
    app.add_middleware(
        RequestGuardMiddleware,
        allowed_hosts=settings.trusted_hosts,
        max_body_bytes=settings.max_body_bytes,
    )
    if settings.cors_origins:
        # Outside the guard, so browsers can read its errors too.
        app.add_middleware(
            ProblemCORSMiddleware,
            allow_origins=settings.cors_origins,
            # Browsers refuse credentials with "*": allow them only for named origins.
            allow_credentials="*" not in settings.cors_origins,
            allow_methods=["GET", "POST", "PATCH", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "X-Request-ID"],
            expose_headers=["X-Request-ID", "Retry-After"],
        )
    # Outermost: the request id exists before anything logs, and is on every response.
    app.add_middleware(RequestObserverMiddleware, metrics=metrics, routes=app.routes)
    # --8<-- [end:install]
