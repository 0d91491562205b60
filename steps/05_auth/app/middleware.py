"""Pure ASGI middleware: request id, timing, security headers, body size limit."""

import json
import re
import time
import uuid
from contextvars import ContextVar

from fastapi import FastAPI
from starlette.datastructures import MutableHeaders
from starlette.middleware.cors import CORSMiddleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.config import Settings

DEFAULT_MAX_BODY_BYTES = 1024 * 1024
# The id is echoed and logged: anything longer or stranger could forge log lines.
_SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,128}")

request_id_var: ContextVar[str] = ContextVar("request_id", default="")


def _response_headers(message: Message) -> MutableHeaders:
    """Return the editable headers of an `http.response.start` message."""
    # The ASGI spec lets a response start without a "headers" key.
    message.setdefault("headers", [])
    return MutableHeaders(scope=message)


def _client_request_id(scope: Scope) -> str | None:
    """Return the client's X-Request-ID if it is safe to echo and log, else None."""
    for name, value in scope["headers"]:
        if name == b"x-request-id":
            candidate = bytes(value).decode("latin-1")
            return candidate if _SANE_REQUEST_ID.fullmatch(candidate) else None
    return None


class RequestIdMiddleware:
    """Give each request an id (the client's, if sane), in `request_id_var` and X-Request-ID."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _client_request_id(scope) or uuid.uuid4().hex

        async def send_with_request_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                _response_headers(message)["X-Request-ID"] = request_id
            await send(message)

        # The route, its dependencies and the log lines read the id from here; the
        # reset keeps it out of whatever this task runs after the request.
        token = request_id_var.set(request_id)
        try:
            await self.app(scope, receive, send_with_request_id)
        finally:
            request_id_var.reset(token)


# No Server-Timing under these paths: on a login it would give the password
# check's time to a tenth of a millisecond, free of network noise, which is the
# measurement a timing attack on accounts needs.
_UNTIMED_PATH_PREFIXES = ("/api/v1/auth/",)


class ServerTimingMiddleware:
    """Report the time to the response's first byte as `Server-Timing: app;dur=<ms>`."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(_UNTIMED_PATH_PREFIXES):
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()

        async def send_with_timing(message: Message) -> None:
            if message["type"] == "http.response.start":
                elapsed_ms = (time.perf_counter() - started) * 1000
                _response_headers(message).append("Server-Timing", f"app;dur={elapsed_ms:.1f}")
            await send(message)

        await self.app(scope, receive, send_with_timing)


class SecurityHeadersMiddleware:
    """Add the headers that stop browsers from misusing API responses."""

    def __init__(self, app: ASGIApp, hsts_max_age: int = 31_536_000) -> None:
        self.app = app
        self.headers = {
            # Never guess a content type: a JSON body must not run as a script.
            "X-Content-Type-Options": "nosniff",
            # An API links nowhere: no URL (with its ids or tokens) leaks to another site.
            "Referrer-Policy": "no-referrer",
            # Nothing here belongs in a frame: no clickjacking.
            "X-Frame-Options": "DENY",
        }
        # No includeSubDomains: that would bind every sibling service to HTTPS too.
        self.hsts = f"max-age={hsts_max_age}"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        # HSTS over plain HTTP is ignored by browsers and misleads readers.
        https = scope["scheme"] == "https"

        async def send_with_security_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = _response_headers(message)
                for name, value in self.headers.items():
                    headers.setdefault(name, value)
                if https:
                    headers.setdefault("Strict-Transport-Security", self.hsts)
            await send(message)

        await self.app(scope, receive, send_with_security_headers)


class BodySizeLimitMiddleware:
    """Answer 413 to request bodies over `max_bytes`, without ever holding the whole body."""

    def __init__(self, app: ASGIApp, max_bytes: int = DEFAULT_MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            # Refused before a single body byte is read.
            await self._send_413(scope, send)
            return

        received = 0
        rejected = False
        app_started_response = False

        async def counting_receive() -> Message:
            nonlocal received, rejected
            if rejected:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] != "http.request":
                return message
            received += len(message.get("body", b""))
            if received <= self.max_bytes:
                return message
            rejected = True
            if not app_started_response:
                await self._send_413(scope, send)
            # To the route the client has gone: it stops reading and gives up, and
            # whatever it answers is dropped below. Raising our own exception here
            # would become FastAPI's generic 400 "There was an error parsing the body".
            return {"type": "http.disconnect"}

        async def guarded_send(message: Message) -> None:
            nonlocal app_started_response
            if rejected and not app_started_response:
                return  # our 413 went out instead
            if message["type"] == "http.response.start":
                app_started_response = True
            await send(message)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except ClientDisconnect:
            # A route reading the body itself stops on the disconnect we staged.
            if not rejected:
                raise

    async def _send_413(self, scope: Scope, send: Send) -> None:
        """Send the 413 problem+json response."""
        problem = {
            "type": "about:blank",
            "title": "Content Too Large",
            "status": 413,
            "detail": f"The request body is larger than the limit of {self.max_bytes} bytes.",
            "instance": scope["path"],
            "request_id": request_id_var.get(),
        }
        body = json.dumps(problem).encode()
        headers = [
            (b"content-type", b"application/problem+json"),
            (b"content-length", str(len(body)).encode()),
            # The rest of the body is still on the wire: do not reuse this connection.
            (b"connection", b"close"),
        ]
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def _content_length(scope: Scope) -> int | None:
    """Return the declared Content-Length, or None when absent or unreadable."""
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def install_middleware(app: FastAPI, settings: Settings) -> None:
    """Wrap the app in its middleware, in the order the comments below explain."""
    # Each add_middleware call wraps everything added before it, so they are
    # added innermost first. A request passes them in the opposite order:
    #   RequestId > ServerTiming > SecurityHeaders > TrustedHost > CORS > BodySizeLimit > app
    # 6. The body limit sits innermost, so its 413 still gets CORS headers (a
    #    browser script can read it), security headers and the request id.
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=DEFAULT_MAX_BODY_BYTES)
    # 5. CORS answers preflights before the app; skipped when no origin is allowed.
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            # Browsers refuse credentials with "*": allow them only for named origins.
            allow_credentials="*" not in settings.cors_origins,
            allow_methods=["GET", "POST", "PATCH", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "X-Request-ID"],
            expose_headers=["X-Request-ID", "Retry-After"],
        )
    # 4. A wrong Host is refused (400) before any other work is done.
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=settings.trusted_hosts)
    # 3. and 2. Outside the refusals, so that a 400 or 413 carries them too.
    app.add_middleware(SecurityHeadersMiddleware)
    app.add_middleware(ServerTimingMiddleware)
    # 1. Outermost: every response from the stack carries the id.
    app.add_middleware(RequestIdMiddleware)
