"""`langgraph-rollback migrate DB --print-sql` attacked: ledgers at every
older version on SQLite and PostgreSQL upgraded by hand with what it prints
(then opened by a saver and, on SQLite, read-only), a fresh file, a missing
one, printing twice, a version table without rows, a `file:` URI."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from langgraph.checkpoint.sqlite import SqliteSaver

from langgraph_rollback import SqliteRollbackSaver, ToolRegistry
from langgraph_rollback.savers import sqlite_sql
from tests.docs.test_cli import cli
from tests.savers.test_attack_migration_v4 import AT_V4, AT_V5, read_only, run
from tests.support.stores import open_saver

LATEST = len(sqlite_sql.MIGRATIONS) - 1
RECORDED = "INSERT INTO lgrb_migrations"

DOWN_FROM: dict[int, tuple[str, ...]] = {
    5: AT_V5,
    4: AT_V4,
    3: (
        "DROP INDEX lgrb_effects_run",
        "DROP INDEX lgrb_effects_thread_key",
        "DELETE FROM lgrb_migrations WHERE v >= 4",
    ),
    2: ("DROP TABLE lgrb_keys", "DELETE FROM lgrb_migrations WHERE v >= 3"),
    1: ("DROP TABLE lgrb_audit", "DELETE FROM lgrb_migrations WHERE v >= 2"),
    0: (
        "ALTER TABLE lgrb_effects DROP COLUMN owner",
        "ALTER TABLE lgrb_locks DROP COLUMN started",  # SQLite only
        "DELETE FROM lgrb_migrations WHERE v >= 1",
    ),
}
"""From the ledger one version up to this one: what that migration added
(PostgreSQL keeps no lgrb_locks: its thread locks are advisory)."""


def at_version(kind: str, where: str, version: int) -> None:
    with open_saver(kind, where, ToolRegistry()) as saver:
        saver.setup()  # type: ignore[attr-defined]
    for down in range(LATEST - 1, version - 1, -1):
        steps = DOWN_FROM[down]
        if kind == "postgres":
            steps = tuple(s for s in steps if "lgrb_locks" not in s)
        run(kind, where, *steps)
    assert run(kind, where, "SELECT max(v) FROM lgrb_migrations") == [(version,)]


def apply_by_hand(kind: str, where: str, script: str) -> None:
    if kind == "sqlite":
        with closing(sqlite3.connect(where)) as conn:
            conn.executescript(script)
        return
    import psycopg

    with psycopg.connect(where, autocommit=True) as conn:
        conn.execute(script)  # one simple query, as psql -c sends it


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str]]:
    if request.param == "sqlite":
        yield "sqlite", str(tmp_path / "ledger.sqlite")
    else:
        yield "postgres", request.getfixturevalue("pg_url")


@pytest.mark.parametrize("version", range(LATEST))
def test_every_older_ledger_upgraded_by_hand_is_at_the_latest_version(
    store: tuple[str, str], version: int
) -> None:
    kind, where = store
    at_version(kind, where, version)
    printed = cli("migrate", where, "--print-sql", env={})
    assert printed.returncode == 0, printed.stderr
    assert printed.stdout.count(RECORDED) == LATEST - version
    apply_by_hand(kind, where, printed.stdout)
    assert run(kind, where, "SELECT max(v) FROM lgrb_migrations") == [(LATEST,)]
    again = cli("migrate", where, "--print-sql", env={})
    assert again.returncode == 0 and "The ledger is up to date." in again.stdout
    assert again.stdout.count(RECORDED) == 0
    if kind == "sqlite":
        with closing(read_only(where)) as conn:
            assert (
                SqliteRollbackSaver(conn).list_effects(
                    {"configurable": {"thread_id": "t"}}
                )
                == []
            )
    with open_saver(kind, where, ToolRegistry()) as saver:
        saver.setup()  # type: ignore[attr-defined]
    assert run(kind, where, "SELECT count(*) FROM lgrb_migrations") == [(LATEST + 1,)]


def test_a_fresh_file_upgraded_by_hand_after_langgraph_s_setup(tmp_path: Path) -> None:
    where = tmp_path / "fresh.sqlite"
    printed = cli("migrate", str(where), "--print-sql", env={})
    assert printed.returncode == 0 and not where.exists()
    assert printed.stdout.count(RECORDED) == LATEST + 1
    assert cli("migrate", str(where), "--print-sql", env={}).stdout == printed.stdout
    with closing(sqlite3.connect(where)) as conn:
        SqliteSaver(conn).setup()  # "LangGraph's own tables are created first"
        conn.executescript(printed.stdout)
    with closing(read_only(str(where))) as conn:
        assert (
            SqliteRollbackSaver(conn).list_effects({"configurable": {"thread_id": "t"}})
            == []
        )


def test_a_missing_directory_is_printed_for_and_left_missing(tmp_path: Path) -> None:
    where = tmp_path / "no" / "such" / "ledger.sqlite"
    printed = cli("migrate", str(where), "--print-sql", env={})
    assert printed.returncode == 0 and printed.stdout.count(RECORDED) == LATEST + 1
    assert not (tmp_path / "no").exists()


def test_a_newer_postgres_ledger_is_refused(pg_url: str) -> None:
    at_version("postgres", pg_url, LATEST)
    run("postgres", pg_url, f"INSERT INTO lgrb_migrations (v) VALUES ({LATEST + 1})")
    printed = cli("migrate", pg_url, "--print-sql", env={})
    assert printed.returncode != 0 and str(LATEST + 1) in printed.stderr
    assert "up to date" not in printed.stdout


def test_a_printed_upgrade_that_fails_by_hand_changes_nothing(tmp_path: Path) -> None:
    where = str(tmp_path / "ledger.sqlite")
    at_version("sqlite", where, LATEST)
    run("sqlite", where, "DELETE FROM lgrb_migrations")
    printed = cli("migrate", where, "--print-sql", env={})
    assert printed.returncode == 0
    with pytest.raises(sqlite3.OperationalError, match="duplicate column"):
        apply_by_hand("sqlite", where, printed.stdout)
    assert run("sqlite", where, "SELECT v FROM lgrb_migrations") == []


def test_a_file_uri_is_printed_for_as_migrate_opens_it(tmp_path: Path) -> None:
    where = str(tmp_path / "ledger.sqlite")
    at_version("sqlite", where, LATEST - 1)
    printed: Any = cli("migrate", f"file:{where}", "--print-sql", env={})
    assert printed.returncode == 0
    assert printed.stdout.count(RECORDED) == 1


def _files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


@pytest.mark.parametrize("mark", ["?", "#"])
def test_a_path_with_a_uri_mark_in_it_is_read_not_created(
    tmp_path: Path, mark: str
) -> None:
    where = tmp_path / f"a{mark}b" / "ledger.sqlite"
    where.parent.mkdir()
    at_version("sqlite", str(where), LATEST - 1)
    before = _files(tmp_path)
    printed = cli("migrate", str(where), "--print-sql", env={})
    assert not (tmp_path / "a").exists()
    assert printed.returncode == 0, printed.stderr
    assert printed.stdout.count(RECORDED) == 1
    assert _files(tmp_path) == before


def test_a_path_with_a_percent_escape_in_it_is_read(tmp_path: Path) -> None:
    where = tmp_path / "a%20b" / "ledger.sqlite"
    where.parent.mkdir()
    at_version("sqlite", str(where), LATEST - 1)
    printed = cli("migrate", str(where), "--print-sql", env={})
    assert printed.returncode == 0, printed.stderr
    assert printed.stdout.count(RECORDED) == 1


def test_a_file_uri_with_a_fragment_is_read_as_migrate_opens_it(
    tmp_path: Path,
) -> None:
    where = tmp_path / "ledger.sqlite"
    at_version("sqlite", str(where), LATEST - 1)
    uri = f"file:{where}#top"
    printed = cli("migrate", uri, "--print-sql", env={})
    assert printed.returncode == 0, printed.stderr
    assert printed.stdout.count(RECORDED) == 1
    assert cli("migrate", uri, env={}).returncode == 0  # migrate opens this file
    assert run("sqlite", str(where), "SELECT max(v) FROM lgrb_migrations") == [
        (LATEST,)
    ]


def test_printing_for_a_wal_ledger_leaves_no_file_behind(tmp_path: Path) -> None:
    where = tmp_path / "ledger.sqlite"
    at_version("sqlite", str(where), LATEST - 1)
    assert run("sqlite", str(where), "PRAGMA journal_mode") == [("wal",)]
    assert _files(tmp_path) == ["ledger.sqlite"]
    printed = cli("migrate", str(where), "--print-sql", env={})
    assert printed.returncode == 0 and printed.stdout.count(RECORDED) == 1
    assert _files(tmp_path) == ["ledger.sqlite"]


@pytest.mark.parametrize("mark", ["?", "#", "%20"])
def test_threads_reads_a_path_with_a_uri_mark_in_it_and_creates_nothing(
    tmp_path: Path, mark: str
) -> None:
    folder = tmp_path / f"a{mark}b"
    folder.mkdir()
    where = folder / "ledger.sqlite"
    at_version("sqlite", str(where), LATEST)
    listed = cli("threads", str(where), env={})
    assert listed.returncode == 0, listed.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == [folder.name]
