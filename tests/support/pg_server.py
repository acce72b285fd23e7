"""A throwaway PostgreSQL server for the tests, or the one named by an env var.

`LANGGRAPH_ROLLBACK_PG_URL` (a server URL, e.g. `postgresql://u:p@127.0.0.1:5432/postgres`)
wins. Otherwise, when `initdb` and `pg_ctl` are on PATH, a server is created in
a temporary directory, on a free loopback port, run as an unprivileged user
when the tests run as root (initdb refuses root), and removed at the end.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

ENV_URL = "LANGGRAPH_ROLLBACK_PG_URL"


class PostgresUnavailable(RuntimeError):
    """No PostgreSQL server can be used."""


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _run_as() -> tuple[list[str], str | None]:
    if os.geteuid() != 0:
        return [], None
    for user in ("postgres", "nobody"):
        try:
            pwd.getpwnam(user)
        except KeyError:
            continue
        runner = shutil.which("runuser")
        if runner:
            return [runner, "-u", user, "--"], user
        return ["su", user, "-s", "/bin/sh", "-c"], user
    raise PostgresUnavailable(
        "running as root and no unprivileged user to run PostgreSQL"
    )


@contextlib.contextmanager
def throwaway_server(*, fsync: bool = False) -> Iterator[str]:
    """Start a PostgreSQL server; yield its URL; stop and delete it.

    Tests run it with `fsync=off` (speed); the benchmarks turn it on, so
    commits cost what they cost in production.
    """
    initdb, pg_ctl = shutil.which("initdb"), shutil.which("pg_ctl")
    if not initdb or not pg_ctl:
        raise PostgresUnavailable("initdb/pg_ctl not on PATH")
    prefix, user = _run_as()
    root = Path(tempfile.mkdtemp(prefix="lgrb-pg-"))
    data, log = root / "data", root / "server.log"
    if user is not None:
        shutil.chown(root, user=user)
    port = _free_port()

    def run(*args: str) -> None:
        command = [*prefix, *args]
        if prefix and prefix[0] == "su":
            command = [*prefix, " ".join(args)]
        subprocess.run(command, check=True, capture_output=True, timeout=120)

    try:
        run(
            initdb,
            "-D",
            str(data),
            "-A",
            "trust",
            "-U",
            "postgres",
            "-E",
            "UTF8",
            "--no-sync",
        )
        options = (
            f"-p {port} -k {root} -c listen_addresses=127.0.0.1 "
            f"-c fsync={'on' if fsync else 'off'} "
            "-c max_connections=200"
        )
        run(
            pg_ctl,
            "-D",
            str(data),
            "-l",
            str(log),
            "-w",
            "-t",
            "60",
            "-o",
            options,
            "start",
        )
    except subprocess.CalledProcessError as exc:
        shutil.rmtree(root, ignore_errors=True)
        message = (exc.stderr or b"").decode(errors="replace")
        if log.exists():
            message += log.read_text(errors="replace")
        raise PostgresUnavailable(f"could not start PostgreSQL: {message}") from exc
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        with contextlib.suppress(subprocess.CalledProcessError):
            run(pg_ctl, "-D", str(data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(root, ignore_errors=True)


@contextlib.contextmanager
def server_url() -> Iterator[str]:
    """The env var's server, or a throwaway one."""
    url = os.environ.get(ENV_URL)
    if url:
        yield url
        return
    with throwaway_server() as started:
        yield started


def with_database(server: str, name: str) -> str:
    """`server`'s URL with the database replaced by `name`."""
    base, _, _ = server.rpartition("/")
    return f"{base}/{name}"


def create_database(server: str) -> str:
    """Create a fresh database on `server`; return its URL."""
    import psycopg

    name = f"lgrb_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return with_database(server, name)


def drop_database(server: str, url: str) -> None:
    import psycopg

    name = url.rpartition("/")[2]
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
