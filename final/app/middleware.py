"""Pure ASGI middleware: BaseHTTPMiddleware breaks context variables and costs throughput."""

import contextlib
import logging
import re
import time
import uuid
from collections.abc import Sequence

from fastapi import FastAPI
from starlette.datastructures import Headers
from starlette.middleware.cors import CORSMiddleware
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.config import Settings
from app.errors import internal_error_response, problem_response
from app.logging import request_id_var
from app.metrics import Metrics

__all__ = [
    "AccessLogMiddleware",
    "BodySizeLimitMiddleware",
    "ProblemCORSMiddleware",
    "RequestIdMiddleware",
    "SecurityHeadersMiddleware",
    "ServerTimingMiddleware",
    "TrustedHostMiddleware",
    "UnhandledErrorMiddleware",
    "install_middleware",
    "request_id_var",  # defined in app.logging, where the log filter reads it
]

access_logger = logging.getLogger("app.access")
error_logger = logging.getLogger("app.errors")

# Echo a client's id only if it is short and harmless in logs and headers.
_SANE_REQUEST_ID = re.compile(rb"[A-Za-z0-9._-]{1,128}")


class RequestIdMiddleware:
    """Give every request an id (the client's X-Request-ID if sane) and echo it on the response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _request_id_from(scope)
        header = (b"x-request-id", request_id.encode())

        async def send_with_request_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), header]
            await send(message)

        token = request_id_var.set(request_id)
        try:
            await self.app(scope, receive, send_with_request_id)
        finally:
            request_id_var.reset(token)


def _request_id_from(scope: Scope) -> str:
    name: bytes
    value: bytes
    for name, value in scope["headers"]:
        if name == b"x-request-id":
            if _SANE_REQUEST_ID.fullmatch(value):
                return value.decode()
            break
    return uuid.uuid4().hex


class AccessLogMiddleware:
    """One log line and one metrics observation per request, labelled by route template."""

    def __init__(self, app: ASGIApp, metrics: Metrics, routes: Sequence[BaseRoute]) -> None:
        self.app = app
        self.metrics = metrics
        self.routes = routes  # the app's list: routes included later still appear
        self._templates_by_endpoint: dict[object, str] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the client sees if the app dies before answering

        async def send_capturing_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_capturing_status)
        finally:
            duration = time.perf_counter() - started
            # The route template ("/api/v1/users/{user_id}"), never the raw
            # path: it keeps label cardinality bounded and ids out of the logs.
            route = self._route_template(scope)
            method = scope["method"]
            self.metrics.requests.labels(method, route, status).inc()
            self.metrics.request_duration.labels(method, route, status).observe(duration)
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


class ServerTimingMiddleware:
    """Report the app's time to first byte in a Server-Timing header (browser dev tools show it)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()

        async def send_with_timing(message: Message) -> None:
            if message["type"] == "http.response.start":
                duration_ms = (time.perf_counter() - started) * 1000
                header = (b"server-timing", f"app;dur={duration_ms:.1f}".encode())
                message["headers"] = [*message.get("headers", ()), header]
            await send(message)

        await self.app(scope, receive, send_with_timing)


_SECURITY_HEADERS = (
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
)
# Only over HTTPS: over plain HTTP browsers ignore it, and it would pin a
# development host to HTTPS. Behind a proxy, uvicorn's --proxy-headers sets the scheme.
_HSTS = (b"strict-transport-security", b"max-age=63072000; includeSubDomains")


class SecurityHeadersMiddleware:
    """Add the browser-hardening headers every response carries."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        extra = (*_SECURITY_HEADERS, _HSTS) if scope["scheme"] == "https" else _SECURITY_HEADERS

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), *extra]
            await send(message)

        await self.app(scope, receive, send_with_headers)


class TrustedHostMiddleware:
    """Refuse requests whose Host header is not ours (a 400 problem+json, unlike Starlette's)."""

    def __init__(self, app: ASGIApp, allowed_hosts: list[str]) -> None:
        self.app = app
        self.allow_any = "*" in allowed_hosts
        self.exact = {host.lower() for host in allowed_hosts if not host.startswith("*.")}
        # "*.example.com" allows every subdomain of example.com.
        self.suffixes = tuple(host[1:].lower() for host in allowed_hosts if host.startswith("*."))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or self.allow_any:
            await self.app(scope, receive, send)
            return
        host = _host_without_port(Headers(scope=scope).get("host", ""))
        if host in self.exact or (self.suffixes and host.endswith(self.suffixes)):
            await self.app(scope, receive, send)
            return
        response = problem_response(
            400, "The Host header names a host this service does not serve.", scope["path"]
        )
        await response(scope, receive, send)


def _host_without_port(host: str) -> str:
    host = host.lower()
    if host.startswith("["):  # an IPv6 literal: [::1]:8000
        return host.partition("]")[0] + "]"
    return host.partition(":")[0]


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


class BodySizeLimitMiddleware:
    """Answer 413 to bodies over max_bytes, counting as they stream in and never buffering."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length")
        # Refuse before reading a byte when the client says the body is too big.
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._too_large(scope)(scope, receive, send)
            return

        received = 0
        rejected = False

        async def counting_receive() -> Message:
            nonlocal received, rejected
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    # Answer now: FastAPI turns any error while reading the
                    # body into a 400, which send_unless_rejected then drops.
                    rejected = True
                    await self._too_large(scope)(scope, receive, send)
                    raise _BodyTooLargeError
            return message

        async def send_unless_rejected(message: Message) -> None:
            if not rejected:
                await send(message)

        # The 413 went out from counting_receive.
        with contextlib.suppress(_BodyTooLargeError):
            await self.app(scope, counting_receive, send_unless_rejected)

    def _too_large(self, scope: Scope) -> ASGIApp:
        return problem_response(
            413, f"The request body is larger than {self.max_bytes} bytes.", scope["path"]
        )


class UnhandledErrorMiddleware:
    """Turn an unexpected exception into a 500 problem+json, logging the traceback.

    It sits inside the other middleware, so the 500 still gets the request id,
    the security headers, a log line and a metrics observation.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        response_started = False

        async def send_tracking_start(message: Message) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        try:
            await self.app(scope, receive, send_tracking_start)
        except Exception:
            # The traceback goes to the log, tagged with the request id; the client gets neither.
            error_logger.exception("Unhandled error while serving a request.")
            if response_started:
                raise  # too late for a 500: let the server close the connection
            await internal_error_response(scope["path"])(scope, receive, send)


# --8<-- [start:install]
def install_middleware(app: FastAPI, settings: Settings, metrics: Metrics) -> None:
    """Install the middleware stack; the last one added runs first (outermost)."""
    # Innermost: unexpected errors become a 500 that still flows through every layer above.
    app.add_middleware(UnhandledErrorMiddleware)
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=settings.max_body_bytes)
    # Refuse foreign Host headers before any work is done for them.
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=settings.trusted_hosts)
    if settings.cors_origins:
        # Outside the host check and the body limit, so browsers can read those errors too.
        app.add_middleware(
            ProblemCORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "PATCH", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "X-Request-ID"],
            expose_headers=["X-Request-ID", "Retry-After", "Server-Timing"],
            # Bearer tokens in a header, never cookies: no credentialed CORS needed.
            allow_credentials=False,
        )
    app.add_middleware(ServerTimingMiddleware)
    app.add_middleware(SecurityHeadersMiddleware)
    # Outside everything that can answer, so every status (400, 413, 500) is logged and counted.
    app.add_middleware(AccessLogMiddleware, metrics=metrics, routes=app.routes)
    # Outermost: the request id exists before anything logs, and is on every response.
    app.add_middleware(RequestIdMiddleware)
    # --8<-- [end:install]
