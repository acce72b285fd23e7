"""Adversarial checks of the command line: errors speak its own terms."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Annotated, Any

import pytest
from langchain_core.messages import AIMessage, HumanMessage
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from typing_extensions import TypedDict

from langgraph_rollback import SqliteRollbackSaver
from tests.support import targets_app

ROOT = Path(__file__).resolve().parents[2]
PYTHON_TERMS = ("get_state_history", "registry=", "limit=", "saver.", "to=")


def cli(*args: str, world: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "langgraph_rollback", *args],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), "TARGETS_APP_DIR": str(world)},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def forked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[str, Path, str]:
    """Two runs, then a fork from before run 2's finish: the database, the
    world, and the id of a checkpoint the fork left on an abandoned branch."""
    world = tmp_path / "app"
    world.mkdir()
    monkeypatch.setenv("TARGETS_APP_DIR", str(world))
    db = str(tmp_path / "agent.sqlite")
    config: Any = {"configurable": {"thread_id": "t"}}
    with SqliteRollbackSaver.from_conn_string(db) as saver:
        graph = targets_app.builder.compile(checkpointer=saver)
        targets_app.run_twice(graph, "t")
        head = graph.get_state(config).config["configurable"]["checkpoint_id"]
        past = next(
            s
            for s in graph.get_state_history(config)
            if s.next == ("finish",) and s.values["run"] == 2
        )
        graph.update_state(past.config, {"run": 2})
        graph.invoke(None, config, durability="sync")
    return db, world, str(head)


def test_a_checkpoint_off_the_path_is_refused_in_cli_terms(
    forked: tuple[str, Path, str],
) -> None:
    db, world, abandoned = forked
    before = sorted(p.name for p in world.iterdir())
    graph = "tests.support.targets_app:builder"
    done = cli(
        "plan", db, "--thread", "t", "--to", abandoned, "--graph", graph, world=world
    )
    assert done.returncode == 2
    assert "not an ancestor" in done.stderr
    assert "langgraph-rollback checkpoints" in done.stderr, done.stderr
    assert not [t for t in PYTHON_TERMS if t in done.stderr], done.stderr
    assert sorted(p.name for p in world.iterdir()) == before


def test_a_bad_limit_is_refused_in_cli_terms(forked: tuple[str, Path, str]) -> None:
    db, world, _ = forked
    done = cli("effects", db, "--thread", "t", "--limit", "-1", world=world)
    assert done.returncode == 2
    assert "--limit" in done.stderr, done.stderr
    assert not [t for t in PYTHON_TERMS if t in done.stderr], done.stderr


def test_a_graph_that_does_not_declare_the_tools_is_explained_in_cli_terms(
    forked: tuple[str, Path, str],
) -> None:
    db, world, _ = forked
    graph = "tests.support.cli_app:builder"  # declares other tools
    done = cli(
        "plan", db, "--thread", "t", "--to", "first", "--graph", graph, world=world
    )
    assert "missing_inverse" in done.stdout
    assert "--graph" in done.stdout, done.stdout
    assert not [t for t in PYTHON_TERMS if t in done.stdout], done.stdout


class Chat(TypedDict):
    messages: Annotated[list[Any], add_messages]
    n: int


PEAK_RSS = (
    "import resource, sys\n"
    "from langgraph_rollback.cli import main\n"
    "code = main(sys.argv[1:])\n"
    "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)\n"
    "sys.exit(code)\n"
)


def peak_kib(*args: str) -> int:
    done = subprocess.run(
        [sys.executable, "-c", PEAK_RSS, *args],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    return int(done.stderr.strip().splitlines()[-1])


@pytest.mark.slow
def test_listing_checkpoints_does_not_load_the_whole_history(tmp_path: Path) -> None:
    """DESIGN: the history of a long agent is large (1.3 GB for 1,000 steps);
    listing targets for --to must not hold every checkpoint in memory."""

    def step(state: Chat) -> dict[str, Any]:
        return {"messages": [AIMessage("x" * 200)], "n": state["n"] + 1}

    builder = StateGraph(Chat)
    builder.add_node("step", step)
    builder.add_edge(START, "step")
    builder.add_conditional_edges("step", lambda s: "step" if s["n"] < 500 else END)
    db = str(tmp_path / "long.sqlite")
    with SqliteRollbackSaver.from_conn_string(db) as saver:
        graph = builder.compile(checkpointer=saver)
        config: Any = {"configurable": {"thread_id": "t"}, "recursion_limit": 600}
        graph.invoke({"messages": [HumanMessage("go")], "n": 0}, config)
    few = peak_kib("checkpoints", db, "--thread", "t", "--limit", "5")
    every = peak_kib("checkpoints", db, "--thread", "t")
    assert every < few * 1.5, f"{every} KiB for every checkpoint, {few} KiB for 5"


DRIFT_APP = """
import os
from pathlib import Path
from typing import Any, TypedDict

from langgraph.graph import END, START, StateGraph

from langgraph_rollback import Effect, reversible

def root() -> Path:
    return Path(os.environ["DRIFT_APP_DIR"])


def read(name: str, **_: Any) -> Any:
    path = root() / name
    return path.read_text() if path.exists() else None


def undo(effect: Effect) -> str:
    (root() / effect.args["name"]).unlink()
    return "deleted"


@reversible(undo=undo, observe=read)
def drift_write(name: str, text: str) -> str:
    (root() / name).write_text(text)
    return name


@reversible(undo=undo)
def blind_write(name: str) -> str:
    (root() / name).write_text("blind")
    if os.environ.get("DRIFT_APP_CRASH"):
        raise KeyboardInterrupt  # the process is stopped mid-call
    return name


class State(TypedDict, total=False):
    done: list[str]


def work(state: State) -> State:
    return {"done": [drift_write("a.txt", "agent"), blind_write("b.txt")]}


builder = StateGraph(State)
builder.add_node("work", work)
builder.add_edge(START, "work")
builder.add_edge("work", END)
"""


@pytest.fixture
def drift_app(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[str, Path, dict[str, str]]:
    """An app whose tools touch files; run once. Returns the database, the
    world and the environment the CLI needs."""
    (tmp_path / "drift_app.py").write_text(DRIFT_APP)
    world = tmp_path / "world"
    world.mkdir()
    monkeypatch.setenv("DRIFT_APP_DIR", str(world))
    monkeypatch.syspath_prepend(str(tmp_path))
    env = {"DRIFT_APP_DIR": str(world), "PYTHONPATH": f"{tmp_path}:{ROOT}"}
    return str(tmp_path / "agent.sqlite"), world, env


def cli_env(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "langgraph_rollback", *args],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_refused_rollback_names_the_cli_option_to_change(
    drift_app: tuple[str, Path, dict[str, str]],
) -> None:
    import drift_app as app  # type: ignore[import-not-found]

    db, world, env = drift_app
    with SqliteRollbackSaver.from_conn_string(db) as saver:
        app.builder.compile(checkpointer=saver).invoke(
            {"done": []}, {"configurable": {"thread_id": "t"}}, durability="sync"
        )
    (world / "a.txt").write_text("a human edited it")
    args = ["rollback", db, "--thread", "t", "--to", "first", "--yes"]
    done = cli_env(*args, "--graph", "drift_app:builder", env=env)
    assert done.returncode == 1
    assert "Refused" in done.stdout
    assert "--on-conflict" in done.stdout, done.stdout
    assert "on_conflict=" not in done.stdout, done.stdout
    assert (world / "a.txt").read_text() == "a human edited it"


def test_an_incomplete_rollback_says_how_to_resolve_from_the_cli(
    drift_app: tuple[str, Path, dict[str, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    import drift_app as app

    db, _, env = drift_app
    monkeypatch.setenv("DRIFT_APP_CRASH", "1")
    with SqliteRollbackSaver.from_conn_string(db) as saver:
        graph = app.builder.compile(checkpointer=saver)
        with pytest.raises(KeyboardInterrupt):
            graph.invoke(
                {"done": []}, {"configurable": {"thread_id": "t"}}, durability="sync"
            )
    args = ["rollback", db, "--thread", "t", "--to", "first", "--yes"]
    done = cli_env(*args, "--graph", "drift_app:builder", env=env)
    assert "incomplete" in done.stdout
    assert "saver.resolve_effect" not in done.stdout + done.stderr, done.stdout


def test_inspecting_a_database_another_process_is_writing_works(
    forked: tuple[str, Path, str],
) -> None:
    """`effects` and `checkpoints` only read: a writer's open transaction (a
    graph mid-step, a batch job) must not make them fail (WAL readers are
    never blocked), nor print a traceback."""
    import sqlite3

    db, world, _ = forked
    writer = sqlite3.connect(db, isolation_level=None)
    try:
        writer.execute("BEGIN IMMEDIATE")
        effects = cli("effects", db, "--thread", "t", "--limit", "2", world=world)
        checkpoints = cli("checkpoints", db, "--thread", "t", world=world)
    finally:
        writer.execute("ROLLBACK")
        writer.close()
    assert "Traceback" not in effects.stderr + checkpoints.stderr, effects.stderr
    assert effects.returncode == 0 and checkpoints.returncode == 0
    assert "target_" in effects.stdout
