"""The command line for the person on call: finding ids, loading the graph
safely, and clean refusals. Each behaviour through a subprocess."""

from __future__ import annotations

import json
import os
import pty
import shlex
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.docs.test_cli import ROOT, cli, populate


@pytest.fixture
def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[str, Path]:
    """A SQLite database where the CLI app wrote 12 files on thread 't'."""
    app_dir = tmp_path / "app"
    app_dir.mkdir()
    db = str(tmp_path / "agent.sqlite")
    populate(db, app_dir, monkeypatch)
    return db, app_dir


def plan(db: str, *graph: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return cli("plan", db, "--thread", "t", "--to", "first", *graph, env=env)


def test_a_node_function_given_to_graph_is_refused_and_performs_nothing(
    app: tuple[str, Path], tmp_path: Path
) -> None:
    db, _ = app
    empty = tmp_path / "untouched"
    empty.mkdir()
    env = {"CLI_APP_DIR": str(empty)}
    for extra in ([], ["--yes"]):
        refused = cli(
            "rollback" if extra else "plan",
            *(db, "--thread", "t", "--to", "first", *extra),
            *("--graph", "tests.support.cli_app:_work"),
            env=env,
        )
        assert refused.returncode == 2, refused.stderr
        assert "is the function _work, not a graph" in refused.stderr
        assert "--graph-factory tests.support.cli_app:_work" in refused.stderr
        assert "Traceback" not in refused.stderr
    assert list(empty.iterdir()) == []  # the node never ran: no file written


@pytest.mark.parametrize(
    ("option", "spec", "said"),
    [
        ("--graph", "tests.support.cli_app:State", "is the class State, not a graph"),
        ("--graph", "langgraph_rollback:rollback", "is the function rollback"),
        ("--graph-factory", "tests.support.cli_app:State", "is the class State"),
        ("--graph-factory", "tests.support.cli_app:builder", "Fix: pass --graph"),
        ("--graph-factory", "langgraph_rollback:rollback", "it was not called"),
    ],
)
def test_what_is_not_a_graph_or_a_factory_is_refused_before_it_runs(
    app: tuple[str, Path], option: str, spec: str, said: str
) -> None:
    db, app_dir = app
    refused = plan(db, option, spec, env={"CLI_APP_DIR": str(app_dir)})
    assert refused.returncode == 2
    assert said in refused.stderr and "Fix:" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert len(list(app_dir.iterdir())) == 12  # nothing was undone either


def test_a_missing_attribute_names_the_graphs_the_module_holds(
    app: tuple[str, Path],
) -> None:
    db, app_dir = app
    refused = plan(db, "--graph", "tests.support.cli_app:nosuch", env={})
    assert refused.returncode == 2
    assert "has no attribute 'nosuch'" in refused.stderr
    assert "Fix: tests.support.cli_app holds these graphs: --graph " in refused.stderr
    assert "tests.support.cli_app:builder" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert len(list(app_dir.iterdir())) == 12  # nothing was undone


def test_a_graph_factory_is_called_with_the_saver(app: tuple[str, Path]) -> None:
    db, app_dir = app
    env = {"CLI_APP_DIR": str(app_dir)}
    planned = plan(db, "--graph-factory", "tests.support.cli_app:make_graph", env=env)
    assert planned.returncode == 0, planned.stderr
    assert (
        sum(ln.strip().startswith("undo ") for ln in planned.stdout.splitlines()) == 12
    )
    done = cli(
        "rollback", db, "--thread", "t", "--to", "first", "--yes",
        "--graph-factory", "tests.support.cli_app:make_graph", env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert list(app_dir.iterdir()) == []


def test_threads_lists_each_thread_with_its_effects_and_last_activity(
    app: tuple[str, Path],
) -> None:
    db, _ = app
    from langgraph_rollback import SqliteRollbackSaver
    from tests.support import cli_app

    with SqliteRollbackSaver.from_conn_string(db) as saver:
        graph = cli_app.builder.compile(checkpointer=saver)
        graph.invoke({"log": []}, {"configurable": {"thread_id": "later"}})
    listed = cli("threads", db, "--json", env={})
    assert listed.returncode == 0, listed.stderr
    rows = json.loads(listed.stdout)
    assert [r["thread_id"] for r in rows] == ["later", "t"]  # latest first
    assert [(r["effects"], r["applied"]) for r in rows] == [(13, 13), (13, 13)]
    assert all(r["checkpoints"] >= 3 for r in rows)
    for row in rows:
        when = datetime.fromisoformat(row["last_activity"])
        assert abs(datetime.now(UTC) - when) < timedelta(minutes=5)
    table = cli("threads", db, "--limit", "1", env={}).stdout.splitlines()
    assert table[0].split()[:4] == ["thread", "checkpoints", "effects", "applied"]
    assert len(table) == 2 and table[1].split()[0] == "later"


def test_threads_on_postgres(
    pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    populate(pg_url, tmp_path, monkeypatch)
    rows = json.loads(cli("threads", pg_url, "--json", env={}).stdout)
    assert [(r["thread_id"], r["effects"]) for r in rows] == [("t", 13)]
    assert len(list(tmp_path.glob("f*.txt"))) == 12


def test_effects_name_the_checkpoint_each_effect_started_from(
    app: tuple[str, Path],
) -> None:
    db, _ = app
    effects = json.loads(cli("effects", db, "--thread", "t", "--json", env={}).stdout)
    checkpoints = json.loads(
        cli("checkpoints", db, "--thread", "t", "--json", env={}).stdout
    )
    started = {e["root_checkpoint_id"] for e in effects}
    assert len(started) == 1
    (row,) = [c for c in checkpoints if c["checkpoint_id"] in started]
    assert row["effects"] == 13
    table = cli("effects", db, "--thread", "t", env={}).stdout.splitlines()
    at = table[0].split().index("checkpoint")
    assert {line.split()[at] for line in table[1:]} == started


def test_version_is_the_package_version() -> None:
    from langgraph_rollback import __version__

    shown = cli("--version", env={})
    assert shown.returncode == 0
    assert shown.stdout.strip() == f"langgraph-rollback {__version__}"


def test_a_file_that_is_not_sqlite_is_a_clean_error(tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("not a database\n" * 100)
    for command in (["effects", "--thread", "t"], ["threads"]):
        refused = cli(command[0], str(notes), *command[1:], env={})
        assert refused.returncode == 2
        assert "not a SQLite database" in refused.stderr and "Fix:" in refused.stderr
        assert "Traceback" not in refused.stderr
    assert notes.read_text() == "not a database\n" * 100


def test_rollback_without_a_terminal_says_to_pass_yes(app: tuple[str, Path]) -> None:
    db, app_dir = app
    refused = cli(
        "rollback", db, "--thread", "t", "--to", "first",
        "--graph", "tests.support.cli_app:builder",
        env={"CLI_APP_DIR": str(app_dir)}, stdin="y\n",
    )  # fmt: skip
    assert refused.returncode == 2
    assert "stdin is not a terminal" in refused.stderr and "--yes" in refused.stderr
    assert "undo " in refused.stdout  # the plan is shown first
    assert len(list(app_dir.iterdir())) == 12


def test_rollback_on_a_terminal_asks(app: tuple[str, Path]) -> None:
    db, app_dir = app
    command = ["rollback", db, "--thread", "t", "--to", "first"]
    command += ["--graph", "tests.support.cli_app:builder"]
    for answer, code, left in (("n", 1, 12), ("y", 0, 0)):
        leader, follower = pty.openpty()
        os.write(leader, f"{answer}\n".encode())
        proc = subprocess.run(
            [sys.executable, "-m", "langgraph_rollback", *command],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT), "CLI_APP_DIR": str(app_dir)},
            stdin=follower,
            capture_output=True,
            text=True,
            timeout=120,
        )
        os.close(follower)
        os.close(leader)
        assert proc.returncode == code, proc.stderr
        assert "Roll back? [y/N]" in proc.stdout
        assert len(list(app_dir.iterdir())) == left


def test_effects_on_a_thread_without_checkpoints_says_so(
    app: tuple[str, Path],
) -> None:
    db, _ = app
    for command in ("effects", "checkpoints"):
        unknown = cli(command, db, "--thread", "nope", env={})
        assert unknown.returncode == 2, command
        assert "Thread 'nope' has no checkpoints and no effects" in unknown.stderr
        assert f"langgraph-rollback threads {db}" in unknown.stderr
    from langgraph_rollback import SqliteRollbackSaver

    with SqliteRollbackSaver.from_conn_string(db) as saver:
        saver.delete_thread("t")  # checkpoints go, the ledger stays
    kept = cli("effects", db, "--thread", "t", env={})
    assert kept.returncode == 0
    assert "thread 't' has no checkpoints" in kept.stderr
    assert sum("cli_write" in line for line in kept.stdout.splitlines()) == 12
    listed = cli("checkpoints", db, "--thread", "t", env={})
    assert listed.returncode == 0, listed.stderr
    assert f"its effects: langgraph-rollback effects {db} --thread t" in listed.stdout


def readme_cli_session() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Command line", 1)[1]
    block = section.split("```sh\n", 1)[1].split("```", 1)[0]
    return [
        line for line in block.splitlines() if line.startswith("langgraph-rollback")
    ]


@pytest.mark.slow
def test_the_readme_cli_session_works_on_the_demo_database(tmp_path: Path) -> None:
    env = {**os.environ, "DEMO_WORKSPACE": str(tmp_path / "demo")}
    demo = subprocess.run(
        [sys.executable, "examples/demo.py"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert demo.returncode == 0, demo.stderr
    db = tmp_path / "demo" / "agent.sqlite"
    assert f"The database is kept: {db}" in demo.stdout
    assert (tmp_path / "demo" / "service.toml").read_text() == "port = 0\n"
    session = readme_cli_session()
    assert [line.split()[1] for line in session] == [
        "threads", "effects", "checkpoints", "plan", "rollback",
    ]  # fmt: skip
    for line in session:
        words = shlex.split(line, comments=True)
        args = [a if a != ".demo/agent.sqlite" else str(db) for a in words]
        ran = subprocess.run(
            [sys.executable, "-m", "langgraph_rollback", *args[1:]],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert ran.returncode == 0, (line, ran.stderr)
    assert "oncall" in demo.stdout
    assert (tmp_path / "demo" / "service.toml").read_text() == "port = 8080\n"
    assert not (tmp_path / "demo" / "notes.md").exists()
