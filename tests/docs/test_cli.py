"""The command line, run as a subprocess against real databases."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]


def cli(
    *args: str, env: dict[str, str], stdin: str = ""
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "langgraph_rollback", *args],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), **env},
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )


def populate(db: str, app_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run the app once, as the user's own process would."""
    monkeypatch.setenv("CLI_APP_DIR", str(app_dir))
    from tests.support import cli_app

    if db.startswith("postgresql://"):
        from langgraph_rollback.postgres import PostgresRollbackSaver

        with PostgresRollbackSaver.from_conn_string(db) as saver:
            saver.setup()
            graph = cli_app.builder.compile(checkpointer=saver)
            graph.invoke(
                {"log": []}, {"configurable": {"thread_id": "t"}}, durability="sync"
            )
        return
    from langgraph_rollback import SqliteRollbackSaver

    with SqliteRollbackSaver.from_conn_string(db) as saver:
        graph = cli_app.builder.compile(checkpointer=saver)
        graph.invoke(
            {"log": []}, {"configurable": {"thread_id": "t"}}, durability="sync"
        )


def run_session(db: str, app_dir: Path) -> None:
    env = {"CLI_APP_DIR": str(app_dir)}
    assert len(list(app_dir.iterdir())) == 12

    table = cli("effects", db, "--thread", "t", env=env)
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].split()[:5] == ["seq", "id", "status", "kind", "tool"]
    assert sum("cli_write" in line for line in lines) == 12
    assert "cli_announce" in lines[1] and "irreversible" in lines[1]

    as_json = cli("effects", db, "--thread", "t", "--json", "--limit", "3", env=env)
    effects: list[dict[str, Any]] = json.loads(as_json.stdout)
    assert [e["tool"] for e in effects] == ["cli_announce", "cli_write", "cli_write"]
    assert effects[1]["args"] == {"name": "f11.txt", "text": "11"}

    plan = cli(
        "plan",
        db,
        "--thread",
        "t",
        "--to",
        "first",
        "--graph",
        "tests.support.cli_app:builder",
        env=env,
    )
    assert plan.returncode == 0, plan.stderr
    assert (
        sum(line.strip().startswith("undo ") for line in plan.stdout.splitlines()) == 12
    )
    assert "announcements cannot be taken back" in plan.stdout

    declined = cli(
        "rollback",
        db,
        "--thread",
        "t",
        "--to",
        "first",
        "--graph",
        "tests.support.cli_app:builder",
        env=env,
        stdin="n\n",
    )
    assert declined.returncode == 2  # no terminal to ask on: says to pass --yes
    assert "--yes" in declined.stderr
    assert len(list(app_dir.iterdir())) == 12

    done = cli(
        "rollback",
        db,
        "--thread",
        "t",
        "--to",
        "first",
        "--graph",
        "tests.support.cli_app:builder",
        "--yes",
        env=env,
    )
    assert done.returncode == 0, done.stderr
    assert "deleted f0.txt (undo of cli_write)" in done.stdout
    assert "[12/12] undone" in done.stderr  # progress
    assert list(app_dir.iterdir()) == []


def test_cli_on_sqlite(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    app_dir = tmp_path / "app"
    app_dir.mkdir()
    db = str(tmp_path / "agent.sqlite")
    populate(db, app_dir, monkeypatch)
    run_session(db, app_dir)


def test_cli_on_postgres(
    pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app_dir = tmp_path / "app"
    app_dir.mkdir()
    populate(pg_url, app_dir, monkeypatch)
    run_session(pg_url, app_dir)


def test_migrate(tmp_path: Path, pg_url: str) -> None:
    db = str(tmp_path / "new.sqlite")
    printed = cli("migrate", db, "--print-sql", env={})
    assert printed.returncode == 0
    assert "CREATE TABLE IF NOT EXISTS lgrb_effects" in printed.stdout
    assert not Path(db).exists()  # printing changes nothing
    assert cli("migrate", db, env={}).returncode == 0
    again = cli("migrate", db, "--print-sql", env={})
    assert "The ledger is up to date." in again.stdout
    pg = cli("migrate", pg_url, "--print-sql", env={})
    assert "BIGINT GENERATED ALWAYS AS IDENTITY" in pg.stdout
    assert cli("migrate", pg_url, env={}).returncode == 0
    assert "up to date" in cli("migrate", pg_url, "--print-sql", env={}).stdout


def test_cli_errors(tmp_path: Path) -> None:
    missing = cli("effects", str(tmp_path / "nope.sqlite"), "--thread", "t", env={})
    assert missing.returncode == 2
    assert "no such SQLite file" in missing.stderr
    db = tmp_path / "x.sqlite"
    assert cli("migrate", str(db), env={}).returncode == 0
    bad_graph = cli(
        "plan", str(db), "--thread", "t", "--to", "first", "--graph", "nothing", env={}
    )
    assert bad_graph.returncode == 2
    assert "module:attr" in bad_graph.stderr
    no_module = cli(
        "plan",
        str(db),
        "--thread",
        "t",
        "--to",
        "first",
        "--graph",
        "no_such_mod:g",
        env={},
    )
    assert no_module.returncode == 2
    assert "cannot import" in no_module.stderr
    bad_status = cli("effects", str(db), "--thread", "t", "--status", "weird", env={})
    assert bad_status.returncode == 2
    assert "weird" in bad_status.stderr

    # Inspecting a database never creates tables in it.
    other = tmp_path / "other.sqlite"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE mine (a)")
    refused = cli("effects", str(other), "--thread", "t", env={})
    assert refused.returncode == 2
    assert "no ledger tables" in refused.stderr and "migrate" in refused.stderr
    with sqlite3.connect(other) as conn:
        names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master")]
    assert names == ["mine"]
    # An unreachable server is one line naming the URL (without its password).
    down = cli(
        "effects", "postgresql://me:secret@127.0.0.1:1/agents", "--thread", "t", env={}
    )
    assert down.returncode == 2
    assert "cannot reach postgresql://me:***@127.0.0.1:1/agents" in down.stderr
    assert "secret" not in down.stderr and "Traceback" not in down.stderr
    printed = cli("migrate", str(tmp_path / "fresh.sqlite"), "--print-sql", env={})
    assert ";;" not in printed.stdout


def test_cli_skips_are_kept_with_who_and_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app_dir = tmp_path / "app"
    app_dir.mkdir()
    db = str(tmp_path / "agent.sqlite")
    populate(db, app_dir, monkeypatch)
    env = {"CLI_APP_DIR": str(app_dir)}
    listed = json.loads(cli("effects", db, "--thread", "t", "--json", env=env).stdout)
    keep = next(e for e in listed if e["args"].get("name") == "f3.txt")
    assert (
        "(no decisions recorded)"
        in cli("effects", db, "--thread", "t", "--audit", env=env).stdout
    )
    done = cli(
        "rollback",
        db,
        "--thread",
        "t",
        "--to",
        "first",
        "--graph",
        "tests.support.cli_app:builder",
        "--yes",
        "--skip",
        keep["id"],
        "--by",
        "oncall-ann",
        "--reason",
        "f3 is the customer's",
        env=env,
    )
    assert done.returncode == 0, done.stderr
    assert [p.name for p in app_dir.iterdir()] == ["f3.txt"]
    table = cli("effects", db, "--thread", "t", "--audit", env=env)
    assert table.returncode == 0, table.stderr
    header, *rows = table.stdout.splitlines()
    assert header.split()[:4] == ["at", "(UTC)", "by", "action"]
    (row,) = [r for r in rows if " skip " in r]
    assert "oncall-ann" in row and keep["id"] in row
    assert "f3 is the customer's" in row
    (asked,) = [r for r in rows if " rollback " in r]
    assert "oncall-ann" in asked and "f3 is the customer's" in asked
    entries = json.loads(
        cli("effects", db, "--thread", "t", "--audit", "--json", env=env).stdout
    )
    (entry,) = [e for e in entries if e["action"] == "skip"]
    assert entry["effect_ids"] == [keep["id"]]
    assert entry["overrode"] == "the plan: undo"


def test_cli_decisions_default_to_the_os_user(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import getpass

    app_dir = tmp_path / "app"
    app_dir.mkdir()
    db = str(tmp_path / "agent.sqlite")
    populate(db, app_dir, monkeypatch)
    env = {"CLI_APP_DIR": str(app_dir)}
    listed = json.loads(cli("effects", db, "--thread", "t", "--json", env=env).stdout)
    keep = next(e for e in listed if e["args"].get("name") == "f0.txt")
    args = ["--graph", "tests.support.cli_app:builder", "--yes", "--skip", keep["id"]]
    done = cli("rollback", db, "--thread", "t", "--to", "first", *args, env=env)
    assert done.returncode == 0, done.stderr
    entries = json.loads(
        cli("effects", db, "--thread", "t", "--audit", "--json", env=env).stdout
    )
    assert {e["action"] for e in entries} == {"rollback", "skip"}
    assert {e["by"] for e in entries} == {getpass.getuser()}
    assert {e["reason"] for e in entries} == {None}
