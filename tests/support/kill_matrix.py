"""The kill -9 matrix: kill a real graph at every named point, and at random.

`python -m tests.support.kill_matrix --backend sqlite --random 220 --out result.json`

For each scenario this process forks a child that runs a graph on a real
saver (a SQLite file, or PostgreSQL with `--url`) against a world of its own
(a separate SQLite database that logs every forward call and every inverse
in the same transaction as the change itself), then rolls the run back. The
child is killed with SIGKILL at a named point (it kills itself there) or at a
random time (this process kills it). A second child then recovers as a user
would: resume the run if it stopped half-way, roll back until the report is
`ok`, and checks the invariants against the world's own log:

1. no forward call ran twice, counted per logical call (each call in the
   graph puts a distinct name=value, and each world change and its log line
   commit together, so a second line means a second call), and the ledger
   holds exactly one effect per call;
2. no inverse ran twice for one effect;
3. every effect the world saw is in the ledger;
4. after the completed rollback the world equals the world at the target;
5. the thread's head holds the target's state.

This process never runs a graph itself, so it stays single-threaded and
forking it is safe.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sqlite3
import sys
import tempfile
import time
import traceback
from collections import Counter
from pathlib import Path
from typing import Annotated, Any, TypedDict

from langgraph.graph.message import add_messages

POINTS = (
    "before_intent",
    "after_intent",
    "after_forward",
    "after_outcome",
    "before_claim",
    "after_claim",
    "after_inverse",
    "before_restore",
    "after_restore",
)
SEED = {"k1": "seed1", "k3": "seed3"}
CALLS = 5
"""Tool calls in the graph `build` makes, each with a distinct name=value."""
KILL: dict[str, Any] = {"at": None, "counts": Counter()}


def hit(point: str) -> None:
    """Count a named point; SIGKILL this process at the chosen occurrence."""
    KILL["counts"][point] += 1
    if KILL["at"] == (point, KILL["counts"][point]):
        os.kill(os.getpid(), signal.SIGKILL)


def probe(point: Any, effect_id: str | None) -> None:
    """The savers' fault-point hook (`core.store.FaultPoint`): count, maybe die."""
    hit(str(point))


class State(TypedDict, total=False):
    log: Annotated[list[str], lambda a, b: a + b]
    messages: Annotated[list[Any], add_messages]


class World:
    """Items in a SQLite database; each change logs itself in the same transaction."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, timeout=30)

    def seed(self) -> None:
        with self.connect() as db:
            db.execute("CREATE TABLE items (name TEXT PRIMARY KEY, value TEXT)")
            db.execute(
                "CREATE TABLE log (id INTEGER PRIMARY KEY, kind TEXT, effect_id TEXT, "
                "name TEXT, value TEXT)"
            )
            db.executemany("INSERT INTO items VALUES (?, ?)", SEED.items())

    def read(self, name: str) -> str | None:
        with self.connect() as db:
            row = db.execute(
                "SELECT value FROM items WHERE name = ?", (name,)
            ).fetchone()
        return None if row is None else str(row[0])

    def put(self, effect_id: str, name: str, value: str | None, kind: str) -> None:
        with self.connect() as db:
            if value is None:
                db.execute("DELETE FROM items WHERE name = ?", (name,))
            else:
                db.execute("INSERT OR REPLACE INTO items VALUES (?, ?)", (name, value))
            db.execute(
                "INSERT INTO log (kind, effect_id, name, value) VALUES (?, ?, ?, ?)",
                (kind, effect_id, name, value),
            )

    def items(self) -> dict[str, str]:
        with self.connect() as db:
            return dict(db.execute("SELECT name, value FROM items").fetchall())

    def log(self, kind: str, by: str = "effect_id") -> Counter[str]:
        """How often each effect id (or `by="call"`: each name=value) is logged."""
        column = "name || '=' || value" if by == "call" else "effect_id"
        with self.connect() as db:
            rows = db.execute(
                f"SELECT {column} FROM log WHERE kind = ?", (kind,)
            ).fetchall()
        return Counter(r[0] for r in rows)


def build(saver: Any, world: World) -> Any:
    """a and c call the tool directly in a node (its outcome commits at once);
    b is a model's two tool calls run by a `ToolNode` (their outcomes travel
    with the task's writes)."""
    from langchain_core.messages import AIMessage
    from langchain_core.tools import tool
    from langgraph.graph import END, START, StateGraph
    from langgraph.prebuilt import ToolNode

    from langgraph_rollback import Effect, current_effect, reversible

    def observe(name: str, **_: Any) -> str | None:
        return world.read(name)

    def undo(effect: Effect) -> str:
        world.put(effect.id, effect.args["name"], effect.before, "inverse")
        return f"restored {effect.args['name']}"

    @reversible(undo=undo, observe=observe, registry=saver.registry)
    @tool
    def put_item(name: str, value: str) -> str:
        """Set an item in the world."""
        effect = current_effect()
        assert effect is not None
        world.put(effect.id, name, value, "forward")
        return value

    def node(*calls: tuple[str, str]) -> Any:
        return lambda state: {
            "log": [put_item.invoke({"name": n, "value": v}) for n, v in calls]
        }

    def model(state: State) -> State:
        calls = [
            {"name": "put_item", "args": {"name": n, "value": v}, "id": f"call-{n}"}
            for n, v in (("k1", "b1"), ("k3", "b3"))
        ]
        return {"messages": [AIMessage("", tool_calls=calls, id="ai-b")]}

    builder = StateGraph(State)
    builder.add_node("a", node(("k1", "a1"), ("k2", "a2")))
    builder.add_node("model", model)
    builder.add_node("b", ToolNode([put_item]))
    builder.add_node("c", node(("k2", "c2")))
    builder.add_edge(START, "a")
    builder.add_edge("a", "model")
    builder.add_edge("model", "b")
    builder.add_edge("b", "c")
    builder.add_edge("c", END)
    return builder.compile(checkpointer=saver)


class Backend:
    """Opens a (killing) saver on a scenario's store."""

    def __init__(self, kind: str, url: str | None) -> None:
        self.kind = kind
        self.url = url

    def open(self, root: Path, *, killing: bool) -> tuple[Any, Any]:
        from langgraph_rollback import SqliteRollbackSaver, ToolRegistry

        registry = ToolRegistry()
        if self.kind == "sqlite":
            conn = sqlite3.connect(root / "agent.sqlite", check_same_thread=False)
            saver = SqliteRollbackSaver(conn, registry=registry)
            saver.probe = probe if killing else None
            return saver, conn.close
        from psycopg import Connection
        from psycopg.rows import dict_row
        from psycopg_pool import ConnectionPool

        from langgraph_rollback.postgres import PostgresRollbackSaver

        assert self.url is not None
        kwargs: Any = {
            "autocommit": True,
            "prepare_threshold": 0,
            "row_factory": dict_row,
        }
        if self.kind == "postgres_pool":
            pool = ConnectionPool(
                self.url, min_size=1, max_size=3, kwargs=kwargs, open=False
            )
            pool.open(wait=True)
            pg_saver = PostgresRollbackSaver(pool, registry=registry)
            pg_saver.probe = probe if killing else None
            return pg_saver, pool.close
        pg_conn = Connection.connect(self.url, **kwargs)
        pg_saver = PostgresRollbackSaver(pg_conn, registry=registry)
        pg_saver.probe = probe if killing else None
        return pg_saver, pg_conn.close


def phase_a(backend: Backend, root: Path, thread: str, kill_at: Any) -> None:
    """Run the graph, then roll it back (killed somewhere, or not at all)."""
    from langgraph_rollback import rollback

    KILL["at"] = kill_at
    saver, close = backend.open(root, killing=True)
    graph = build(saver, World(root / "world.sqlite"))
    config = {"configurable": {"thread_id": thread}}
    # A kill from here on is a kill mid-run.
    (root / "started").write_text(repr(time.perf_counter()))
    graph.invoke({"log": []}, config, durability="sync")
    first = list(graph.get_state_history(config))[-1]
    rollback(graph, config, to=first)
    close()


def restored(graph: Any, config: Any) -> bool:
    """Whether the head is a rollback's restored copy (a finished rollback:
    resuming from it would be a new run, not a recovery)."""
    return "lgrb_restore" in (graph.get_state(config).metadata or {})


def resume_settling_lost_results(graph: Any, saver: Any, config: Any) -> None:
    """Resume; a call that landed but lost its result to the kill is settled
    as a user would, from the world (`put_item` returns the value it put)."""
    from langgraph_rollback import EffectResultUnknownError

    for _ in range(CALLS + 1):
        try:
            graph.invoke(None, config, durability="sync")
            return
        except EffectResultUnknownError as lost:
            effect = saver.get_effect(config, lost.effect_id)
            saver.resolve_effect(config, effect.id, result=effect.args["value"])
    raise AssertionError("the resume kept losing results")


def phase_b(backend: Backend, root: Path, thread: str) -> dict[str, Any]:
    """Recover as a user would; check the invariants against the world's log."""
    from langgraph_rollback import rollback

    world = World(root / "world.sqlite")
    saver, close = backend.open(root, killing=False)
    graph = build(saver, world)
    config: Any = {"configurable": {"thread_id": thread}}
    history = list(graph.get_state_history(config))
    if len(history) <= 1:
        # Nothing stored, or only the input checkpoint (perhaps without its
        # input write): no task ran yet, so start the run again.
        graph.invoke({"log": []}, config, durability="sync")
    elif not restored(graph, config):
        # Resume. Not only when `get_state().next` is set: when every task of
        # the head's step left its writes, `next` is empty but the run is not
        # over (the next step's checkpoint was never written).
        resume_settling_lost_results(graph, saver, config)
    first = list(graph.get_state_history(config))[-1]
    reports = []
    for _ in range(4):
        report = rollback(graph, config, to=first)
        reports.append(report.status)
        if report.ok:
            break
    forward, inverse = world.log("forward"), world.log("inverse")
    calls = world.log("forward", by="call")
    ledger = {e.id for e in saver.list_effects(config)}
    violations = []
    if any(n > 1 for n in forward.values()) or any(n > 1 for n in calls.values()):
        violations.append(f"a forward call ran twice: {dict(calls)}")
    if len(ledger) != CALLS:
        effects = [(e.tool, e.args, e.status.value) for e in saver.list_effects(config)]
        violations.append(
            f"{len(ledger)} effects in the ledger, not {CALLS}: {effects}; "
            f"{len(history)} checkpoints at recovery, reports {reports}"
        )
    if any(n > 1 for n in inverse.values()):
        violations.append(f"an inverse ran twice: {dict(inverse)}")
    if set(forward) - ledger:
        violations.append(f"effects missing from the ledger: {set(forward) - ledger}")
    if reports[-1] not in ("completed", "nothing_to_undo"):
        violations.append(f"the rollback did not complete: {reports}")
    if world.items() != SEED:
        violations.append(f"world is {world.items()}, not the target's {SEED}")
    if graph.get_state(config).values != first.values:
        violations.append("the head does not hold the target's state")
    close()
    return {"violations": violations, "reports": reports, "effects": len(ledger)}


def fork(
    fn: Any, *args: Any, kill_after: float | None = None, started: Path | None = None
) -> int:
    """Run `fn(*args)` in a forked child; return its wait status. With
    `kill_after`, SIGKILL the child that many seconds after it wrote
    `started` (waited for, not guessed: a loaded machine starts children
    late), or after the fork when there is no such file."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        code = 0
        try:
            fn(*args)
        except BaseException:
            traceback.print_exc()
            code = 1
        os._exit(code)
    if kill_after is not None:
        while started is not None and not started.exists():
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                return status
            time.sleep(0.0005)
        time.sleep(kill_after)
        os.kill(pid, signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
    return status


def run_scenario(
    backend: Backend, base: Path, name: str, kill_at: Any, kill_after: float | None
) -> dict[str, Any]:
    root = base / name
    root.mkdir()
    World(root / "world.sqlite").seed()
    thread = f"kill-{name}"
    status = fork(
        phase_a,
        backend,
        root,
        thread,
        kill_at,
        kill_after=kill_after,
        started=root / "started",
    )
    killed = os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
    out = root / "result.json"

    def recover() -> None:
        out.write_text(json.dumps(phase_b(backend, root, thread)))

    if fork(recover) != 0 or not out.exists():
        return {"name": name, "killed": killed, "violations": ["recovery crashed"]}
    result = json.loads(out.read_text())
    started = (root / "started").exists()
    return {"name": name, "killed": killed, "mid_run": killed and started, **result}


def count_points(backend: Backend, base: Path) -> tuple[Counter[str], float, float]:
    """Runs without kills: how often each point is reached, and when, as this
    process sees it, a child starts its run and how long the run takes (the
    medians of three, as the first pays for caches). Random kills fall in
    that run's window."""
    starts, runs = [], []
    for attempt in range(3):
        root = base / f"dry-{attempt}"
        root.mkdir()
        World(root / "world.sqlite").seed()
        counts_file = root / "counts.json"

        def dry(
            root: Path = root, counts_file: Path = counts_file, n: int = attempt
        ) -> None:
            # A thread of its own: PostgreSQL keeps one database for all runs.
            phase_a(backend, root, f"kill-dry-{n}", None)
            # perf_counter is CLOCK_MONOTONIC: the same clock in every process.
            counts_file.write_text(
                json.dumps({"counts": KILL["counts"], "ended": time.perf_counter()})
            )

        forked = time.perf_counter()
        assert fork(dry) == 0, "the dry run failed"
        started = float((root / "started").read_text())
        starts.append(started - forked)
        runs.append(json.loads(counts_file.read_text())["ended"] - started)
    counts = Counter(json.loads(counts_file.read_text())["counts"])
    return counts, sorted(starts)[1], sorted(runs)[1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "--backend", choices=("sqlite", "postgres", "postgres_pool"), default="sqlite"
    )
    parser.add_argument("--url")
    parser.add_argument("--random", type=int, default=220)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    backend = Backend(args.backend, args.url)
    # Import everything before forking, so children start fast.
    from langchain_core.messages import AIMessage  # noqa: F401
    from langchain_core.tools import tool  # noqa: F401
    from langgraph.graph import StateGraph  # noqa: F401
    from langgraph.prebuilt import ToolNode  # noqa: F401

    import langgraph_rollback

    if args.backend.startswith("postgres"):
        import langgraph_rollback.postgres  # noqa: F401
        from langgraph_rollback.postgres import PostgresRollbackSaver

        with PostgresRollbackSaver.from_conn_string(args.url) as saver:
            saver.setup()
    started = time.perf_counter()
    results = []
    with tempfile.TemporaryDirectory(prefix="lgrb-kill-") as tmp:
        base = Path(tmp)
        counts, startup, seconds = count_points(backend, base)
        missing = [p for p in POINTS if counts[p] == 0]
        assert not missing, f"points never reached: {missing}"
        for point in POINTS:
            for n in range(1, counts[point] + 1):
                name = f"{point}-{n}"
                results.append(run_scenario(backend, base, name, (point, n), None))
        rng = random.Random(args.seed)
        for i in range(args.random):
            delay = rng.uniform(0, seconds)
            result = run_scenario(backend, base, f"random-{i}", None, delay)
            results.append(result)
            if not result["killed"]:
                # Runs get faster as caches warm: a run that ended before its
                # kill time shows the window is now shorter (never shorter
                # than that run, which ended within `delay`).
                seconds = min(seconds, delay)
    named = [r for r in results if not r["name"].startswith("random")]
    violations = [(r["name"], v) for r in results for v in r["violations"]]
    summary = {
        "backend": args.backend,
        "named_points": len(named),
        "named_killed": sum(r["killed"] for r in named),
        "random_times": args.random,
        "random_killed": sum(
            r.get("mid_run", False) for r in results if r["name"].startswith("random")
        ),
        "random_before_start": sum(
            r["killed"] and not r.get("mid_run")
            for r in results
            if r["name"].startswith("random")
        ),
        "ledger_effects": sorted({r.get("effects", -1) for r in results}),
        "kill_points_tried": len(results),
        "violations": len(violations),
        "violation_details": violations[:20],
        "seconds": round(time.perf_counter() - started, 1),
        "dry_run_seconds": round(seconds, 3),
        "child_startup_seconds": round(startup, 3),
    }
    Path(args.out).write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary))
    sys.exit(0)


if __name__ == "__main__":
    main()
