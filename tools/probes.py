"""Ask a port whether PostgreSQL or Redis answers there, speaking just enough of each protocol."""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass

# PostgreSQL's startup message asks for protocol 3.0 as the user and database the
# workshop uses; a server that accepts it without a password is usable as-is.
_PG_PROTOCOL_3_0 = 196608
_PG_STARTUP_PARAMS = b"user\0postgres\0database\0postgres\0\0"
_PG_AUTH_OK = 0
_PG_TERMINATE = b"X\0\0\0\x04"


@dataclass(frozen=True)
class Answer:
    """What a port said: whether the expected server answered, and why it is unusable if so."""

    answered: bool
    problem: str | None = None

    @property
    def usable(self) -> bool:
        """Tell whether the server answered and accepts the workshop's connection."""
        return self.answered and self.problem is None


SILENT = Answer(answered=False, problem="nothing answers")


def postgres_answer(host: str, port: int, timeout: float = 1.0) -> Answer:
    """Send PostgreSQL's startup message and read the first reply."""
    body = struct.pack("!i", _PG_PROTOCOL_3_0) + _PG_STARTUP_PARAMS
    try:
        with socket.create_connection((host, port), timeout=timeout) as conn:
            conn.sendall(struct.pack("!i", len(body) + 4) + body)
            # Every reply starts with a type byte and a four-byte length.
            kind = _read_some(conn, 5)[:1]
            if kind == b"R":
                (code,) = struct.unpack("!i", _read_some(conn, 4).rjust(4, b"\xff"))
                if code != _PG_AUTH_OK:
                    return Answer(answered=True, problem="it asks for a password")
                # Say goodbye properly, or the server logs an unexpected EOF.
                conn.sendall(_PG_TERMINATE)
                return Answer(answered=True)
            if kind == b"E":
                return Answer(answered=True, problem=f"it refused: {_pg_error_message(conn)}")
    except OSError:
        return SILENT
    return Answer(answered=False, problem="something else than PostgreSQL answers")


def redis_answer(host: str, port: int, timeout: float = 1.0) -> Answer:
    """Send Redis a PING and read the reply."""
    try:
        reply = redis_command(host, port, "PING", timeout=timeout)
    except OSError:
        return SILENT
    if reply == b"+PONG":
        return Answer(answered=True)
    if reply.startswith((b"-NOAUTH", b"-WRONGPASS")):
        return Answer(answered=True, problem="it asks for a password")
    if reply.startswith(b"-"):
        return Answer(answered=True, problem=f"it replied {reply[1:].decode(errors='replace')}")
    return Answer(answered=False, problem="something else than Redis answers")


def redis_command(host: str, port: int, *args: str, timeout: float = 1.0) -> bytes:
    """Send one Redis command and return the first line of its reply."""
    request = f"*{len(args)}\r\n".encode()
    for arg in args:
        encoded = arg.encode()
        request += b"$%d\r\n%s\r\n" % (len(encoded), encoded)
    with socket.create_connection((host, port), timeout=timeout) as conn:
        conn.sendall(request)
        return _read_line(conn)


def _read_some(conn: socket.socket, size: int, already: bytes = b"") -> bytes:
    """Read until `size` bytes arrived or the peer closed."""
    data = already
    while len(data) < size:
        chunk = conn.recv(size - len(data))
        if not chunk:
            break
        data += chunk
    return data


def _read_line(conn: socket.socket) -> bytes:
    """Read one CRLF-terminated RESP line, without its terminator."""
    data = b""
    while not data.endswith(b"\r\n") and len(data) < 1024:
        chunk = conn.recv(1)
        if not chunk:
            break
        data += chunk
    return data.rstrip(b"\r\n")


def _pg_error_message(conn: socket.socket) -> str:
    """Read the rest of an ErrorResponse and return its human-readable message field."""
    # The fields follow the header: a type byte and a C string each, 'M' the message.
    fields = conn.recv(4096)
    for field in fields.split(b"\0"):
        if field[:1] == b"M":
            return field[1:].decode(errors="replace")
    return "no reason given"
