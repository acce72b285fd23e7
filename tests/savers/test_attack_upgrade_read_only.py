"""A ledger that needs an upgrade, opened read-only, attacked: the async SQLite
saver, a current ledger read-only through it, the CLI on a file it cannot
write."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import aiosqlite
import pytest

from langgraph_rollback import (
    AsyncSqliteRollbackSaver,
    LedgerUpgradeError,
    RollbackError,
    SqliteRollbackSaver,
    ToolRegistry,
)
from langgraph_rollback.savers import sqlite_sql
from tests.graph.test_forward_guarantees import cfg, draft_then_ask
from tests.savers.test_attack_migration_v4 import interrupted_at_v3, read_only, run
from tests.support.stores import open_saver
from tests.support.world import World

ROOT = Path(__file__).resolve().parents[2]


async def test_the_async_saver_names_the_upgrade_a_read_only_v3_ledger_needs(
    tmp_path: Path, world: World
) -> None:
    where = str(tmp_path / "ledger.sqlite")
    interrupted_at_v3("sqlite", where, world)
    async with aiosqlite.connect(f"file:{where}?mode=ro", uri=True) as conn:
        with pytest.raises(LedgerUpgradeError, match=r"version 3.*Fix: open it once"):
            await AsyncSqliteRollbackSaver(conn).alist_effects(cfg())
    assert run("sqlite", where, "SELECT max(v) FROM lgrb_migrations") == [(3,)]


async def test_the_async_saver_reads_a_current_ledger_read_only(
    tmp_path: Path, world: World
) -> None:
    where = str(tmp_path / "ledger.sqlite")
    registry = ToolRegistry()
    with open_saver("sqlite", where, registry) as saver:
        draft_then_ask(saver, world, registry)
    async with aiosqlite.connect(f"file:{where}?mode=ro", uri=True) as conn:
        saver = AsyncSqliteRollbackSaver(conn, registry=registry)
        (effect,) = await saver.alist_effects(cfg())
    assert effect.tool == "write_file" and world.count("forward") == 1


def test_a_second_read_after_the_refusal_refuses_the_same_way(
    tmp_path: Path, world: World
) -> None:
    where = str(tmp_path / "ledger.sqlite")
    interrupted_at_v3("sqlite", where, world)
    with closing(read_only(where)) as conn:
        saver = SqliteRollbackSaver(conn)
        for _ in range(2):
            with pytest.raises(LedgerUpgradeError):
                saver.list_effects(cfg())
        assert not conn.in_transaction


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory another user can enter (pytest's tmp_path is root's only)."""
    where = Path(tempfile.mkdtemp(prefix="lgrb-ro-"))
    where.chmod(0o777)
    yield where
    shutil.rmtree(where)


def test_the_cli_on_a_v3_file_it_cannot_write_says_how_to_upgrade(
    shared_dir: Path, world: World
) -> None:
    where = str(shared_dir / "ledger.sqlite")
    interrupted_at_v3("sqlite", where, world)
    os.chmod(where, 0o444)
    setpriv = shutil.which("setpriv")
    if setpriv is None or os.geteuid() != 0:
        pytest.skip("needs root and setpriv to run the CLI as another user")
    as_nobody = [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups"]
    command = [sys.executable, "-m", "langgraph_rollback", "effects", where]
    done = subprocess.run(
        [*as_nobody, *command, "--thread", "t1"],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), "HOME": str(shared_dir)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode != 0 and done.stdout == ""
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "version 3" in done.stderr and "Fix: " in done.stderr
    assert "Traceback" not in done.stderr
    assert run("sqlite", where, "SELECT max(v) FROM lgrb_migrations") == [(3,)]


def test_a_read_only_current_ledger_without_a_digest_key_says_what_it_needs(
    tmp_path: Path,
) -> None:
    from langgraph.checkpoint.serde.encrypted import EncryptedSerializer

    where = str(tmp_path / "ledger.sqlite")
    with SqliteRollbackSaver.from_conn_string(where) as saver:
        saver.setup()
    serde = EncryptedSerializer.from_pycryptodome_aes(key=b"0123456789abcdef")
    with closing(read_only(where)) as conn, pytest.raises(RollbackError) as info:
        SqliteRollbackSaver(conn, serde=serde).list_effects(cfg())
    assert "needs its digest key written first" in str(info.value)
    latest = len(sqlite_sql.MIGRATIONS) - 1
    assert run("sqlite", where, "SELECT max(v) FROM lgrb_migrations") == [(latest,)]
