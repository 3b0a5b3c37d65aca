"""A real PostgreSQL server for the tests (the Debian package ``postgresql``; CI installs it).

``postgres_server`` (session-scoped) runs the package's ``initdb`` and ``pg_ctl`` (under
``/usr/lib/postgresql/*/bin``) in a temporary directory, on 127.0.0.1 on a free port, with ``fsync`` off
(a test server: nothing to keep), and stops it after the session. PostgreSQL refuses to run as root; when
the tests run as root the server runs as the ``postgres`` system user the package creates (``runuser``),
in a directory handed to that user. ``postgres_db`` gives each test a fresh, empty database on it. If
PostgreSQL is not installed the tests that use it fail with a message saying so: the PostgreSQL stores
are features, not optional extras of the test suite.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

INSTALL = "`apt-get install -y postgresql` (Debian package)"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _bin_dir() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    if initdb is None:
        pytest.fail(f"PostgreSQL is not installed (no initdb under /usr/lib/postgresql/*/bin): {INSTALL}")
    return Path(initdb).parent


def _as_server_user(args: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return args
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        pytest.fail(f"running as root and there is no `postgres` user to run PostgreSQL as: {INSTALL}")
    runuser = shutil.which("runuser")
    if runuser is None:
        pytest.fail("running as root and `runuser` (util-linux) is missing: PostgreSQL refuses to run as root")
    return [runuser, "-u", "postgres", "--", *args]


def _psql_ready(port: int) -> bool:
    """A startup packet gets an answer (an auth request or an error) once the server accepts connections."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as conn:
            # SSLRequest: a live server answers one byte, "S" or "N".
            conn.sendall(b"\x00\x00\x00\x08\x04\xd2\x16\x2f")
            return conn.recv(1) in (b"S", b"N")
    except OSError:
        return False


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """The URL (``postgresql://postgres@127.0.0.1:PORT/postgres``) of a server started for this session."""
    bin_dir = _bin_dir()
    with tempfile.TemporaryDirectory(prefix="llmrelay-pg-") as tmp:
        if os.geteuid() == 0:
            user = pwd.getpwnam("postgres")
            os.chown(tmp, user.pw_uid, user.pw_gid)
        data = Path(tmp) / "data"
        port = _free_port()
        init = subprocess.run(
            _as_server_user(
                [str(bin_dir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync"]
            ),
            capture_output=True,
            text=True,
            timeout=60,
        )
        if init.returncode != 0:
            pytest.fail(f"initdb failed ({init.returncode}): {init.stderr.strip() or init.stdout.strip()}")
        options = f"-h 127.0.0.1 -p {port} -k {tmp} -F -c max_connections=200"
        ctl = [str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(Path(tmp) / "server.log")]
        started = subprocess.run(
            _as_server_user([*ctl, "-o", options, "-w", "-t", "30", "start"]),
            capture_output=True,
            text=True,
            timeout=60,
        )
        try:
            if started.returncode != 0:
                log = Path(tmp, "server.log")
                tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
                pytest.fail(f"PostgreSQL did not start on 127.0.0.1:{port}: {started.stderr.strip()} {tail}")
            deadline = time.monotonic() + 10.0
            while not _psql_ready(port):
                if time.monotonic() > deadline:
                    pytest.fail(f"PostgreSQL started but does not answer on 127.0.0.1:{port}")
                time.sleep(0.02)
            yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
        finally:
            subprocess.run(
                _as_server_user([*ctl, "-m", "immediate", "-w", "-t", "30", "stop"]), capture_output=True, timeout=60
            )


def _admin(url: str, sql: str) -> None:
    """Run one statement on ``url``, on a thread of its own (a test's event loop may be running here)."""
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    try:
        import asyncpg
    except ImportError:
        pytest.fail("asyncpg is not installed: pip install -e '.[dev]' (it is in the dev and gateway extras)")

    async def run() -> None:
        conn = await asyncpg.connect(url)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, run()).result(timeout=60)


@pytest.fixture
def postgres_db(postgres_server: str) -> Iterator[str]:
    """The URL of a fresh, empty database on the session's server (dropped after the test)."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    _admin(postgres_server, f"CREATE DATABASE {name}")
    try:
        yield postgres_server.rsplit("/", 1)[0] + "/" + name
    finally:
        _admin(postgres_server, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
