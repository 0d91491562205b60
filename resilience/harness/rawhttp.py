"""HTTP/1.1 over a raw socket, so a test controls every byte a client sends."""

import asyncio
import contextlib
from collections.abc import Sequence
from dataclasses import dataclass

from harness.processes import HOST

MAX_RESPONSE_BYTES = 1024 * 1024


@dataclass(frozen=True)
class RawResponse:
    """A parsed response, or None for a connection closed without one."""

    status: int
    headers: dict[str, str]
    body: bytes

    def describe(self) -> str:
        """One line for an assertion message."""
        return f"{self.status} {self.headers.get('content-type')} {self.body[:300]!r}"


async def exchange(
    port: int,
    head: bytes,
    body_chunks: Sequence[bytes] = (),
    *,
    pause: float = 0.0,
    bound_seconds: float,
) -> RawResponse | None:
    """Send head and body_chunks (pausing between chunks), then read the response until close."""
    reader, writer = await asyncio.wait_for(asyncio.open_connection(HOST, port), bound_seconds)
    received = bytearray()

    async def read_until_closed() -> None:
        # Reading runs beside the writing: the server may answer (413) and close while
        # the body is still going out, and the reset our next write then causes would
        # otherwise discard the answer before we read it.
        with contextlib.suppress(ConnectionError):
            while len(received) < MAX_RESPONSE_BYTES:
                data = await reader.read(65536)
                if not data:
                    return
                received.extend(data)

    try:
        async with asyncio.timeout(bound_seconds):
            reading = asyncio.create_task(read_until_closed())
            with contextlib.suppress(ConnectionError):
                writer.write(head)
                await writer.drain()
                for chunk in body_chunks:
                    if reading.done():
                        break
                    writer.write(chunk)
                    await writer.drain()
                    if pause:
                        await asyncio.sleep(pause)
            await reading
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
    raw = bytes(received)
    return parse(raw)


def parse(raw: bytes) -> RawResponse | None:
    """Parse one HTTP/1.1 response (Connection: close, so the body is the rest)."""
    if not raw:
        return None
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return RawResponse(status=int(status_line.split()[1]), headers=headers, body=body)


def request_head(method: str, path: str, port: int, headers: dict[str, str]) -> bytes:
    """The request line and headers, ending with the blank line; the connection closes after."""
    lines = [f"{method} {path} HTTP/1.1", f"Host: {HOST}:{port}", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
