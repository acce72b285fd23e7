"""`langgraph-rollback resolve`, run as a subprocess: an operator's decision on
an effect whose outcome is unknown, checked in the ledger and the world."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from langgraph_rollback import SqliteRollbackSaver

ROOT = Path(__file__).resolve().parents[2]

APP = """
import os
from pathlib import Path
from typing import Any, TypedDict

from langgraph.graph import END, START, StateGraph

from langgraph_rollback import Effect, reversible


def undo(effect: Effect) -> str:
    (Path(os.environ["RESOLVE_APP_DIR"]) / effect.args["name"]).unlink()
    return "deleted " + effect.args["name"]


@reversible(undo=undo)
def resolve_write(name: str) -> str:
    (Path(os.environ["RESOLVE_APP_DIR"]) / name).write_text("x")
    if os.environ.get("RESOLVE_APP_CRASH"):
        raise KeyboardInterrupt  # the process is stopped mid-call
    return name


class State(TypedDict, total=False):
    done: list[str]


def work(state: State) -> State:
    return {"done": [resolve_write("b.txt")]}


builder = StateGraph(State)
builder.add_node("work", work)
builder.add_edge(START, "work")
builder.add_edge("work", END)
"""


@pytest.fixture
def crashed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[str, Path, dict[str, str], str]:
    """A run stopped during its one call: the database, the world, the CLI's
    environment and the pending effect's id."""
    (tmp_path / "resolve_app.py").write_text(APP)
    world = tmp_path / "world"
    world.mkdir()
    monkeypatch.setenv("RESOLVE_APP_DIR", str(world))
    monkeypatch.setenv("RESOLVE_APP_CRASH", "1")
    monkeypatch.syspath_prepend(str(tmp_path))
    import resolve_app  # type: ignore[import-not-found]

    db = str(tmp_path / "agent.sqlite")
    config: Any = {"configurable": {"thread_id": "t"}}
    with SqliteRollbackSaver.from_conn_string(db) as saver:
        graph = resolve_app.builder.compile(checkpointer=saver)
        with pytest.raises(KeyboardInterrupt):
            graph.invoke({"done": []}, config, durability="sync")
        (effect,) = saver.list_effects(config)
    env = {"RESOLVE_APP_DIR": str(world), "PYTHONPATH": f"{tmp_path}:{ROOT}"}
    return db, world, env, effect.id


def cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "langgraph_rollback", *args],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def status_of(db: str, effect_id: str) -> str:
    with sqlite3.connect(db) as conn:
        row = conn.execute(
            "SELECT status FROM lgrb_effects WHERE effect_id = ?", (effect_id,)
        ).fetchone()
    return str(row[0])


def test_resolve_applied_lets_the_cli_rollback_undo_the_call(
    crashed: tuple[str, Path, dict[str, str], str],
) -> None:
    db, world, env, effect_id = crashed
    assert status_of(db, effect_id) == "pending"
    args = ["resolve", db, "--thread", "t", effect_id, "--applied"]
    done = cli(*args, "--result", '"b.txt"', "--expect-status", "pending", env=env)
    assert done.returncode == 0, done.stderr
    assert "was pending, is now applied" in done.stdout
    assert status_of(db, effect_id) == "applied"
    with SqliteRollbackSaver.from_conn_string(db) as saver:
        effect = saver.get_effect({"configurable": {"thread_id": "t"}}, effect_id)
    assert (effect.result, effect.result_known) == ("b.txt", True)
    args = ["rollback", db, "--thread", "t", "--to", "first", "--yes"]
    back = cli(*args, "--graph", "resolve_app:builder", env=env)
    assert back.returncode == 0, back.stdout + back.stderr
    assert list(world.iterdir()) == []
    assert status_of(db, effect_id) == "compensated"


def test_resolve_not_applied_records_who_and_why(
    crashed: tuple[str, Path, dict[str, str], str],
) -> None:
    db, world, env, effect_id = crashed
    args = ["resolve", db, "--thread", "t", effect_id, "--not-applied"]
    done = cli(*args, "--by", "alice", "--reason", "no such file", env=env)
    assert done.returncode == 0, done.stderr
    assert "recorded by alice (no such file)" in done.stdout
    assert status_of(db, effect_id) == "failed"
    with SqliteRollbackSaver.from_conn_string(db) as saver:
        effect = saver.get_effect({"configurable": {"thread_id": "t"}}, effect_id)
    assert effect.error == "resolved by alice (no such file): not applied"
    assert [p.name for p in world.iterdir()] == ["b.txt"]  # nothing was run


def test_resolve_by_defaults_to_the_os_user(
    crashed: tuple[str, Path, dict[str, str], str],
) -> None:
    import getpass

    db, _, env, effect_id = crashed
    done = cli("resolve", db, "--thread", "t", effect_id, "--not-applied", env=env)
    assert done.returncode == 0, done.stderr
    assert f"recorded by {getpass.getuser()}." in done.stdout


def test_a_stale_expect_status_is_refused_and_changes_nothing(
    crashed: tuple[str, Path, dict[str, str], str],
) -> None:
    db, world, env, effect_id = crashed
    args = ["resolve", db, "--thread", "t", effect_id, "--compensated"]
    done = cli(*args, "--expect-status", "compensating", env=env)
    assert done.returncode == 2
    assert "is pending, not compensating as --expect-status says" in done.stderr
    assert "Traceback" not in done.stderr
    assert status_of(db, effect_id) == "pending"
    assert [p.name for p in world.iterdir()] == ["b.txt"]


@pytest.mark.parametrize(
    ("flags", "says"),
    [
        (["--compensated"], "--applied (it landed) or --not-applied"),
        ([], "--applied (it landed) or --not-applied"),
        (["--applied", "--result", "{bad"], "--result '{bad' is not JSON"),
    ],
)
def test_a_decision_that_does_not_fit_is_refused_in_cli_terms(
    crashed: tuple[str, Path, dict[str, str], str], flags: list[str], says: str
) -> None:
    db, _, env, effect_id = crashed
    done = cli("resolve", db, "--thread", "t", effect_id, *flags, env=env)
    assert done.returncode == 2
    assert says in done.stderr, done.stderr
    assert "applied=" not in done.stderr and "saver." not in done.stderr
    assert status_of(db, effect_id) == "pending"


def test_an_unknown_effect_names_the_effects_command(
    crashed: tuple[str, Path, dict[str, str], str],
) -> None:
    db, _, env, _ = crashed
    done = cli("resolve", db, "--thread", "t", "nope", "--applied", env=env)
    assert done.returncode == 2
    assert "langgraph-rollback effects" in done.stderr, done.stderr
