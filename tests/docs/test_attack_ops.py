"""Adversarial checks for the person on call: the command line with odd and
hostile input, the audit trail's promises, and the packaging. The CLI runs
as a subprocess on real SQLite files and a real PostgreSQL; each check looks
at the world (files, a call log) and the ledger."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from langgraph.types import Command

from langgraph_rollback import AuditAction, AuditEntry, SqliteRollbackSaver
from tests.support.waiting import wait_for

ROOT = Path(__file__).resolve().parents[2]
SECRET = "S3cretPw0rd"

OPS_APP = '''
"""The on-call probes' app: file writes with observe, an irreversible page,
one slow inverse (it waits for a `go` file), a node that asks twice."""

import os
import time
from pathlib import Path
from typing import Any, TypedDict

from langgraph.graph import END, START, StateGraph
from langgraph.types import interrupt

from langgraph_rollback import Effect, irreversible, reversible


def root() -> Path:
    return Path(os.environ["OPS_APP_DIR"])


def log(line: str) -> None:
    with (root() / "calls.log").open("a") as f:
        f.write(line + "\\n")


def read(name: str, **_: Any) -> Any:
    path = root() / name
    return path.read_text() if path.exists() else None


def undo(effect: Effect) -> str:
    name = effect.args["name"]
    log(f"undo {name}")
    if name == "slow.txt":
        (root() / "slow-undo-started").write_text("")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not (root() / "go").exists():
            time.sleep(0.02)
    (root() / name).unlink()
    return f"deleted {name}"


@reversible(undo=undo, observe=read)
def ops_write(name: str, text: str) -> str:
    log(f"write {name}")
    (root() / name).write_text(text)
    return name


@irreversible(reason="a page cannot be unsent")
def ops_page(who: str) -> str:
    log(f"page {who}")
    return f"paged {who}"


class State(TypedDict, total=False):
    done: list[str]


def work(state: State) -> State:
    names = [ops_write(n, n) for n in ("first.txt", "slow.txt", "last.txt")]
    return {"done": names}


def work_and_page(state: State) -> State:
    return {"done": [ops_write("b1.txt", "b1"), ops_page("oncall")]}


def page_then_ask(state: State) -> State:
    paged = ops_page("oncall")
    interrupt("anything else?")
    return {"done": [paged]}


builder = StateGraph(State)
builder.add_node("work", work)
builder.add_edge(START, "work")
builder.add_edge("work", END)

both = StateGraph(State)
both.add_node("work_and_page", work_and_page)
both.add_edge(START, "work_and_page")
both.add_edge("work_and_page", END)

pager = StateGraph(State)
pager.add_node("page_then_ask", page_then_ask)
pager.add_edge(START, "page_then_ask")
pager.add_edge("page_then_ask", END)
'''

FACTORIES = """
from langgraph_rollback import InMemoryRollbackSaver
import ops_app


def boom(saver):
    raise ValueError("the factory could not read its settings")


def elsewhere(saver):
    return ops_app.builder.compile(checkpointer=InMemoryRollbackSaver())
"""

RAISES_AT_IMPORT = 'raise RuntimeError("SERVICE_TOKEN is not set")\n'


@dataclass
class Ops:
    db: str
    world: Path
    env: dict[str, str]
    tmp: Path

    def cli(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "langgraph_rollback", *args],
            cwd=self.tmp,
            env={**os.environ, **self.env},
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )

    def files(self) -> set[str]:
        return {p.name for p in self.world.iterdir() if p.suffix == ".txt"}

    def calls(self) -> list[str]:
        log = self.world / "calls.log"
        return log.read_text().splitlines() if log.exists() else []

    def effects(self, thread: str = "t") -> dict[str, str]:
        with SqliteRollbackSaver.from_conn_string(self.db) as saver:
            listed = saver.list_effects({"configurable": {"thread_id": thread}})
        return {e.args.get("name", e.tool): e.status.value for e in listed}

    def effect_id(self, name: str, thread: str = "t") -> str:
        with SqliteRollbackSaver.from_conn_string(self.db) as saver:
            listed = saver.list_effects({"configurable": {"thread_id": thread}})
        return next(e.id for e in listed if e.args.get("name") == name)

    def audit(self, thread: str = "t") -> list[Any]:
        done = self.cli("effects", self.db, "--thread", thread, "--audit", "--json")
        assert done.returncode == 0, done.stderr
        return list(json.loads(done.stdout))


ROLLBACK = ("--to", "first", "--graph", "ops_app:builder", "--yes")


def ops_app_in(tmp: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    (tmp / "ops_app.py").write_text(OPS_APP)
    (tmp / "ops_factories.py").write_text(FACTORIES)
    (tmp / "raises_at_import.py").write_text(RAISES_AT_IMPORT)
    world = tmp / "world"
    world.mkdir()
    monkeypatch.setenv("OPS_APP_DIR", str(world))
    monkeypatch.syspath_prepend(str(tmp))
    import ops_app  # type: ignore[import-not-found]

    return ops_app


def run_app(db: str, thread: str = "t", graph_name: str = "builder") -> None:
    import ops_app

    with SqliteRollbackSaver.from_conn_string(db) as saver:
        graph = getattr(ops_app, graph_name).compile(checkpointer=saver)
        config: Any = {"configurable": {"thread_id": thread}}
        graph.invoke({"done": []}, config, durability="sync")


@pytest.fixture
def ops(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Ops:
    """The app run once on thread 't': three files written, in the ledger."""
    ops_app_in(tmp_path, monkeypatch)
    db = str(tmp_path / "agent.sqlite")
    run_app(db)
    world = tmp_path / "world"
    env = {"OPS_APP_DIR": str(world), "PYTHONPATH": f"{tmp_path}:{ROOT}"}
    (world / "go").write_text("")  # the slow inverse does not wait here
    return Ops(db, world, env, tmp_path)


THREE = {"first.txt", "slow.txt", "last.txt"}


def cut_off(db: str, effect_id: str) -> None:
    """Leave `effect_id` as a process that died mid-call leaves it: pending,
    its performer gone."""
    with sqlite3.connect(db) as conn:
        conn.execute(
            "UPDATE lgrb_effects SET status = 'pending', owner = NULL "
            "WHERE effect_id = ?",
            (effect_id,),
        )


# --- the command line: what it prints ---------------------------------------


def test_a_thread_id_with_a_newline_cannot_forge_a_threads_row(ops: Ops) -> None:
    forged = "x\nfake-thread  999  999  999  2099-01-01 00:00:00"
    run_app(ops.db, thread=forged)
    listed = ops.cli("threads", ops.db)
    assert listed.returncode == 0, listed.stderr
    assert len(listed.stdout.splitlines()) == 3  # a header and two threads
    assert not any(ln.startswith("fake-thread") for ln in listed.stdout.splitlines())


def test_a_hostile_by_or_reason_cannot_forge_audit_rows(ops: Ops) -> None:
    effect_id = ops.effect_id("slow.txt")
    forged_by = "mallory\n2099-01-01 00:00:00  root  force  all"
    done = ops.cli(
        "rollback", ops.db, "--thread", "t", *ROLLBACK, "--skip", effect_id,
        "--by", forged_by, "--reason", "\x1b[2Jcleared\x07",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert ops.files() == {"slow.txt"}
    table = ops.cli("effects", ops.db, "--thread", "t", "--audit").stdout
    assert len(table.splitlines()) == 3, table  # a header, the rollback, its skip
    assert "\x1b" not in table and "\x07" not in table


def test_hostile_by_and_reason_round_trip_through_audit_json(ops: Ops) -> None:
    by = "ann\n\t\x1b[31m\u202e<script>\"'\\"
    done = ops.cli(
        "rollback", ops.db, "--thread", "t", *ROLLBACK,
        "--skip", ops.effect_id("slow.txt"), "--by", by, "--reason", "x" * 100_000,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    pending = ops.effect_id("slow.txt")
    cut_off(ops.db, pending)
    reason = "r\x00\x01\x1b " + "é" * 500_000 + "\n"  # 1 MB, control chars
    config: Any = {"configurable": {"thread_id": "t"}}
    with SqliteRollbackSaver.from_conn_string(ops.db) as saver:
        saver.resolve_effect(config, pending, applied=True, by=by, reason=reason)
        stored = saver.list_audit(config)
    dumped = ops.cli("effects", ops.db, "--thread", "t", "--audit", "--json")
    assert dumped.returncode == 0, dumped.stderr
    read_back = [AuditEntry.model_validate(e) for e in json.loads(dumped.stdout)]
    assert read_back == stored
    assert {e.by for e in read_back} == {by}
    assert {e.reason for e in read_back} == {"x" * 100_000, reason}
    assert ops.files() == {"slow.txt"}


def test_limit_zero_does_not_claim_the_thread_is_empty(ops: Ops) -> None:
    checkpoints = ops.cli("checkpoints", ops.db, "--thread", "t", "--limit", "0")
    threads = ops.cli("threads", ops.db, "--limit", "0")
    assert checkpoints.returncode == threads.returncode == 0
    assert "no checkpoints" not in checkpoints.stdout, checkpoints.stdout
    assert "no threads" not in threads.stdout, threads.stdout


def test_a_huge_limit_is_a_clean_error_or_lists_everything(ops: Ops) -> None:
    huge = str(2**70)
    for command in (["effects", "--thread", "t"], ["checkpoints", "--thread", "t"]):
        done = ops.cli(command[0], ops.db, *command[1:], "--limit", huge)
        assert "Traceback" not in done.stderr, done.stderr
        assert done.returncode in (0, 2)


def test_a_unicode_thread_id_works_end_to_end(ops: Ops) -> None:
    thread = "日本語 ✓ thread/with spaces"
    (ops.world / "go").unlink()
    for name in THREE:
        (ops.world / name).unlink()
    run_app(ops.db, thread=thread)
    (ops.world / "go").write_text("")
    rows = json.loads(ops.cli("threads", ops.db, "--json").stdout)
    assert {r["thread_id"] for r in rows} == {"t", thread}
    effects = ops.cli("effects", ops.db, "--thread", thread, "--json")
    assert len(json.loads(effects.stdout)) == 3
    checkpoints = ops.cli("checkpoints", ops.db, "--thread", thread, "--json")
    assert len(json.loads(checkpoints.stdout)) >= 3, checkpoints.stderr
    done = ops.cli("rollback", ops.db, "--thread", thread, *ROLLBACK)
    assert done.returncode == 0, done.stderr
    assert ops.files() == set()
    assert set(ops.effects(thread).values()) == {"compensated"}
    assert set(ops.effects("t").values()) == {"applied"}  # the other thread kept


# --- the command line: errors ------------------------------------------------


BATCH = """
import contextlib, io, json, sys
from langgraph_rollback.cli import main
results = []
for argv in json.load(sys.stdin):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv, out)
        except SystemExit as exc:
            code = exc.code
        except BaseException as exc:
            err.write(f"Traceback: {exc!r}")
            code = 1
    results.append([argv[0], code, out.getvalue() + err.getvalue()])
json.dump(results, sys.__stdout__)
"""


def cli_batch(argvs: list[list[str]], env: dict[str, str]) -> list[Any]:
    """Several CLI commands in one interpreter (each `main` call as the
    console script makes it): [command, exit code, everything printed]."""
    done = subprocess.run(
        [sys.executable, "-c", BATCH],
        input=json.dumps(argvs),
        env={**os.environ, "PYTHONPATH": str(ROOT), **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return list(json.loads(done.stdout))


def test_the_postgres_password_is_never_printed(pg_url: str, tmp_path: Path) -> None:
    host = pg_url.split("://", 1)[1].split("@", 1)[1]
    userinfo = f"postgresql://postgres:{SECRET}@{host}"
    query = f"postgresql://postgres@{host}?password={SECRET}&sslmode=disable"
    dead = f"postgresql://postgres@127.0.0.1:1/x?password={SECRET}"
    graph = ["--graph", "ops_app:builder"]
    argvs: list[list[str]] = [["threads", dead]]
    for url in (userinfo, query):
        argvs += [
            ["threads", url],  # before migrate: no ledger tables
            ["migrate", url],
            ["threads", url],
            ["effects", url, "--thread", "nope"],
            ["checkpoints", url, "--thread", "nope"],
            ["effects", url, "--thread", "nope", "--audit"],
            ["resolve", url, "--thread", "nope", "e1", "--applied"],
            ["plan", url, "--thread", "nope", "--to", "first", *graph],
            ["rollback", url, "--thread", "nope", "--to", "first", *graph, "--yes"],
            ["migrate", url, "--print-sql"],
        ]
    (tmp_path / "ops_app.py").write_text(OPS_APP)
    env = {"PYTHONPATH": f"{tmp_path}:{ROOT}", "OPS_APP_DIR": str(tmp_path)}
    leaks = [
        (command, printed)
        for command, _, printed in cli_batch(argvs, env)
        if SECRET in printed
    ]
    assert leaks == []


def test_migrate_on_a_file_that_is_not_sqlite_is_a_clean_error(ops: Ops) -> None:
    notes = ops.tmp / "notes.txt"
    notes.write_text("not a database\n" * 100)
    for args in ([str(notes)], [str(notes), "--print-sql"], ["no/such/dir/a.sqlite"]):
        done = ops.cli("migrate", *args)
        assert done.returncode == 2, done.stderr
        assert "Traceback" not in done.stderr and "Fix:" in done.stderr
    assert notes.read_text() == "not a database\n" * 100


def test_a_blank_by_is_refused_in_cli_words(ops: Ops) -> None:
    done = ops.cli("rollback", ops.db, "--thread", "t", *ROLLBACK, "--by", "  ")
    assert done.returncode == 2
    assert ops.files() == THREE
    assert "--by" in done.stderr and "by=" not in done.stderr, done.stderr


@pytest.mark.parametrize(
    "graph",
    [
        ["--graph", "raises_at_import:builder"],
        ["--graph-factory", "ops_factories:boom"],
    ],
)
def test_a_graph_that_fails_to_load_is_one_line_naming_the_option(
    ops: Ops, graph: list[str]
) -> None:
    done = ops.cli("rollback", ops.db, "--thread", "t", "--to", "first", *graph)
    assert ops.files() == THREE
    assert done.returncode == 2
    assert "Traceback" not in done.stderr and graph[0] in done.stderr, done.stderr


def test_a_factory_that_ignores_the_saver_is_refused(ops: Ops) -> None:
    done = ops.cli(
        "plan", ops.db, "--thread", "t", "--to", "first",
        "--graph-factory", "ops_factories:elsewhere",
    )  # fmt: skip
    assert done.returncode == 2
    assert "--graph-factory" in done.stderr and "saver" in done.stderr, done.stderr


def test_resolve_twice_keeps_one_decision(ops: Ops) -> None:
    effect_id = ops.effect_id("last.txt")
    cut_off(ops.db, effect_id)
    args = ["resolve", ops.db, "--thread", "t", effect_id, "--expect-status", "pending"]
    first = ops.cli(*args, "--applied", "--by", "ann", "--reason", "it is there")
    assert first.returncode == 0, first.stderr
    again = ops.cli(*args, "--not-applied", "--by", "bob")
    assert again.returncode == 2 and "not pending" in again.stderr, again.stderr
    stale = ops.cli(*args[:5], "--not-applied", "--by", "bob")
    assert stale.returncode == 2, stale.stderr
    entries = ops.audit()
    assert [(e["by"], e["action"], e["reason"]) for e in entries] == [
        ("ann", "resolve", "it is there")
    ]
    assert ops.effects()["last.txt"] == "applied"
    assert ops.files() == THREE and "undo last.txt" not in ops.calls()


def test_a_refused_force_keeps_no_decision_and_changes_nothing(ops: Ops) -> None:
    run_app(ops.db, thread="b", graph_name="both")  # a write, then a page
    (ops.world / "b1.txt").write_text("a human edited it")  # a conflict
    args = ["rollback", ops.db, "--thread", "b", "--to", "first", "--yes"]
    args += ["--graph", "ops_app:both", "--on-conflict", "force", "--by", "ann"]
    refused = ops.cli(*args, "--on-irreversible", "abort")
    assert refused.returncode == 1 and "Refused" in refused.stdout, refused.stdout
    assert ops.audit("b") == []  # nothing was overridden: nothing is kept
    assert (ops.world / "b1.txt").read_text() == "a human edited it"
    forced = ops.cli(*args)
    assert forced.returncode == 0, forced.stdout + forced.stderr
    entries = {e["action"]: e for e in ops.audit("b")}
    assert set(entries) == {"rollback", "force"}
    entry = entries["force"]
    assert (entry["by"], entries["rollback"]["by"]) == ("ann", "ann")
    assert entry["effect_ids"] == [ops.effect_id("b1.txt", thread="b")]
    assert not (ops.world / "b1.txt").exists()
    assert ops.calls().count("page oncall") == 1


# --- the command line: the database under stress ---------------------------


@contextmanager
def immutable(path: Path) -> Iterator[None]:
    """`path` read-only even for root (the tests may run as root)."""
    subprocess.run(["chattr", "+i", str(path)], check=True, timeout=30)
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(path)], check=True, timeout=30)


def _can_make_immutable(tmp: Path) -> bool:
    probe = tmp / "probe"
    probe.write_text("")
    done = subprocess.run(["chattr", "+i", str(probe)], capture_output=True, timeout=30)
    subprocess.run(["chattr", "-i", str(probe)], capture_output=True, timeout=30)
    return done.returncode == 0


@pytest.fixture
def read_only(ops: Ops) -> Ops:
    if not _can_make_immutable(ops.tmp):
        pytest.skip("chattr +i is not available here")
    return ops


def test_a_read_only_database_can_be_inspected_and_rollback_changes_nothing(
    read_only: Ops,
) -> None:
    ops = read_only
    with immutable(Path(ops.db)):
        for command in (["threads"], ["effects", "--thread", "t"],
                        ["checkpoints", "--thread", "t"],
                        ["effects", "--thread", "t", "--audit"]):  # fmt: skip
            done = ops.cli(command[0], ops.db, *command[1:])
            assert done.returncode == 0, (command, done.stderr)
        refused = ops.cli("rollback", ops.db, "--thread", "t", *ROLLBACK)
        assert refused.returncode != 0
    assert ops.files() == THREE and not [c for c in ops.calls() if c.startswith("undo")]
    assert set(ops.effects().values()) == {"applied"}


def test_rollback_on_a_read_only_database_is_a_clean_error(read_only: Ops) -> None:
    ops = read_only
    with immutable(Path(ops.db)):
        refused = ops.cli("rollback", ops.db, "--thread", "t", *ROLLBACK)
    assert refused.returncode == 2
    assert "Traceback" not in refused.stderr and "Fix:" in refused.stderr


def test_a_wal_database_in_a_read_only_directory_is_not_called_not_sqlite(
    read_only: Ops,
) -> None:
    ops = read_only
    backup = ops.tmp / "backup"
    backup.mkdir()
    copy = backup / "agent.sqlite"
    copy.write_bytes(Path(ops.db).read_bytes())  # closed cleanly: no -wal, -shm
    with immutable(backup):
        done = ops.cli("effects", str(copy), "--thread", "t")
    assert "not a SQLite database" not in done.stderr, done.stderr


@pytest.fixture(scope="module")
def locked_rollback(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Ops, subprocess.CompletedProcess[str], float]]:
    """A rollback run while another process holds the write lock; the lock is
    released afterwards. Yields the app, the refused run and its seconds."""
    import time

    tmp = tmp_path_factory.mktemp("locked")
    with pytest.MonkeyPatch.context() as monkeypatch:
        ops_app_in(tmp, monkeypatch)
        db = str(tmp / "agent.sqlite")
        run_app(db)
        env = {"OPS_APP_DIR": str(tmp / "world"), "PYTHONPATH": f"{tmp}:{ROOT}"}
        (tmp / "world" / "go").write_text("")
        ops = Ops(db, tmp / "world", env, tmp)
        writer = sqlite3.connect(db, isolation_level=None)
        try:
            writer.execute("BEGIN IMMEDIATE")
            started = time.monotonic()
            done = ops.cli("rollback", db, "--thread", "t", *ROLLBACK)
            took = time.monotonic() - started
        finally:
            writer.execute("ROLLBACK")
            writer.close()
        yield ops, done, took


def test_a_locked_database_makes_rollback_fail_fast_and_change_nothing(
    locked_rollback: tuple[Ops, subprocess.CompletedProcess[str], float],
) -> None:
    ops, done, took = locked_rollback
    assert done.returncode != 0 and took < 30
    assert ops.files() == THREE and not [c for c in ops.calls() if c.startswith("undo")]
    again = ops.cli("rollback", ops.db, "--thread", "t", *ROLLBACK)
    assert again.returncode == 0, again.stderr
    assert ops.files() == set()


def test_a_locked_database_is_a_clean_error(
    locked_rollback: tuple[Ops, subprocess.CompletedProcess[str], float],
) -> None:
    _, done, _ = locked_rollback
    assert done.returncode == 2
    assert "Traceback" not in done.stderr and "locked" in done.stderr


def test_ctrl_c_mid_rollback_leaves_it_resumable_and_the_lock_free(ops: Ops) -> None:
    (ops.world / "go").unlink()  # the slow inverse waits
    proc = subprocess.Popen(
        [sys.executable, "-m", "langgraph_rollback", "rollback", ops.db,
         "--thread", "t", *ROLLBACK],
        cwd=ops.tmp, env={**os.environ, **ops.env}, stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        # A shell without job control starts background commands with SIGINT
        # ignored, and Python keeps that: give the CLI a Ctrl-C to receive.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )  # fmt: skip
    try:
        wait_for(lambda: (ops.world / "slow-undo-started").exists(), "slow inverse")
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=30)
    assert proc.returncode != 0
    assert ops.files() == {"first.txt", "slow.txt"}
    assert ops.effects() == {
        "last.txt": "compensated", "slow.txt": "compensating", "first.txt": "applied",
    }  # fmt: skip
    (ops.world / "go").write_text("")
    again = ops.cli("rollback", ops.db, "--thread", "t", *ROLLBACK)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "in progress" not in again.stderr
    assert ops.files() == set()
    undos = [c for c in ops.calls() if c.startswith("undo")]
    assert undos.count("undo last.txt") == 1 and undos.count("undo first.txt") == 1


def test_threads_on_an_empty_database_and_on_thousands_of_threads(ops: Ops) -> None:
    empty = str(ops.tmp / "empty.sqlite")
    assert ops.cli("migrate", empty).returncode == 0
    listed = ops.cli("threads", empty)
    assert listed.returncode == 0 and "(no threads in" in listed.stdout
    assert json.loads(ops.cli("threads", empty, "--json").stdout) == []
    with sqlite3.connect(ops.db) as conn:  # 3,000 more threads, copies of 't'
        columns = [r[1] for r in conn.execute("PRAGMA table_info(checkpoints)")]
        rest = ", ".join(c for c in columns if c != "thread_id")
        for i in range(3000):
            conn.execute(
                f"INSERT INTO checkpoints (thread_id, {rest}) "
                f"SELECT ?, {rest} FROM checkpoints WHERE thread_id = 't'",
                (f"copy-{i:04d}",),
            )
    rows = json.loads(ops.cli("threads", ops.db, "--json", timeout=60).stdout)
    assert len(rows) == 3001
    assert next(r for r in rows if r["thread_id"] == "t")["effects"] == 3
    assert len(ops.cli("threads", ops.db, "--limit", "5").stdout.splitlines()) == 6


# --- the audit trail, in Python on a real SQLite file ------------------------


def _pager(tmp: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, str]:
    app = ops_app_in(tmp, monkeypatch)
    return app, str(tmp / "agent.sqlite")


def test_a_guard_answer_replayed_by_a_later_interrupt_is_kept_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app, db = _pager(tmp_path, monkeypatch)
    config: Any = {"configurable": {"thread_id": "p"}}
    with SqliteRollbackSaver.from_conn_string(db, guard="ask") as saver:
        graph = app.pager.compile(checkpointer=saver)
        graph.invoke({"done": []}, config)  # the guard asks
        graph.invoke(Command(resume={"approve": True, "by": "ann"}), config)
        (first,) = saver.list_audit(config)
        graph.invoke(Command(resume="nothing"), config)  # the node runs again
        assert saver.list_audit(config) == [first]
    assert (tmp_path / "world" / "calls.log").read_text() == "page oncall\n"
    assert (first.by, first.action) == ("ann", AuditAction.ALLOW)


def test_after_a_refusal_later_answers_are_not_taken_and_not_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from langgraph_rollback import IrreversibleToolBlockedError

    app, db = _pager(tmp_path, monkeypatch)
    config: Any = {"configurable": {"thread_id": "p"}}
    with SqliteRollbackSaver.from_conn_string(db, guard="ask") as saver:
        graph = app.pager.compile(checkpointer=saver)
        graph.invoke({"done": []}, config)
        for who, yes in (("ann", False), ("bob", False), ("dan", True)):
            with pytest.raises(IrreversibleToolBlockedError):
                graph.invoke(Command(resume={"approve": yes, "by": who}), config)
        entries = saver.list_audit(config)
    assert not (tmp_path / "world" / "calls.log").exists()  # never paged
    assert [(e.by, e.action) for e in entries] == [("ann", AuditAction.REFUSE)]


def test_the_authenticated_user_is_kept_when_the_answer_names_someone_else(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app, db = _pager(tmp_path, monkeypatch)
    config: Any = {"configurable": {"thread_id": "p", "langgraph_auth_user_id": "dana"}}
    with SqliteRollbackSaver.from_conn_string(db, guard="ask") as saver:
        graph = app.pager.compile(checkpointer=saver)
        graph.invoke({"done": []}, config)
        graph.invoke(Command(resume={"approve": True, "by": "the-ceo"}), config)
        (entry,) = saver.list_audit(config)
    assert (entry.by, entry.details.get("claimed_by")) == ("dana", "the-ceo"), entry


# --- packaging ------------------------------------------------------------


def run_without_psycopg(*argv: str, env: dict[str, str] | None = None) -> Any:
    script = (
        "import sys\n"
        "sys.modules['psycopg'] = None  # not installed\n"
        "from langgraph_rollback.cli import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    return subprocess.run(
        [sys.executable, "-c", script, *argv],
        env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_postgres_url_without_psycopg_is_one_line_with_the_fix() -> None:
    url = f"postgresql://u:{SECRET}@127.0.0.1:1/x"
    for argv in (["threads", url], ["migrate", url, "--print-sql"]):
        done = run_without_psycopg(*argv)
        assert done.returncode == 2, done.stderr
        assert "Traceback" not in done.stderr and "[postgres]" in done.stderr


def test_psycopg_without_an_implementation_is_told_to_add_one() -> None:
    done = subprocess.run(
        [sys.executable, "-c", "import langgraph_rollback.postgres"],
        env={**os.environ, "PYTHONPATH": str(ROOT), "PSYCOPG_IMPL": "c"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert "psycopg[binary]" in done.stderr, done.stderr


@pytest.mark.slow
def test_the_demo_twice_in_a_row_then_the_readme_session(tmp_path: Path) -> None:
    from tests.docs.test_cli_ops import readme_cli_session

    env = {**os.environ, "DEMO_WORKSPACE": str(tmp_path / "demo")}
    for _ in range(2):
        demo = subprocess.run(
            [sys.executable, "examples/demo.py"],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert demo.returncode == 0, demo.stderr
    db = tmp_path / "demo" / "agent.sqlite"
    rows = json.loads(ops_cli(env, "threads", str(db), "--json").stdout)
    assert sorted((r["thread_id"], r["effects"]) for r in rows) == [
        ("demo", 3), ("oncall", 3),
    ]  # fmt: skip
    import shlex

    for line in readme_cli_session():
        words = shlex.split(line, comments=True)
        args = [a if a != ".demo/agent.sqlite" else str(db) for a in words[1:]]
        ran = ops_cli(env, *args)
        assert ran.returncode == 0, (line, ran.stderr)
    assert (tmp_path / "demo" / "service.toml").read_text() == "port = 8080\n"
    assert not (tmp_path / "demo" / "notes.md").exists()


def ops_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "langgraph_rollback", *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The built wheel installed into a fresh virtualenv, run from outside the
    tree: what it printed, before and after adding the `[postgres]` extra
    (without `psycopg[binary]`: the system's libpq)."""
    tmp = tmp_path_factory.mktemp("wheel")
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp)}

    def run(*command: str | Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(c) for c in command], cwd=tmp, env=env,
            capture_output=True, text=True, timeout=600,
        )  # fmt: skip

    pip = [sys.executable, "-m", "pip"]
    built = run(*pip, "wheel", "--no-deps", "--quiet", "-w", tmp / "dist", ROOT)
    assert built.returncode == 0, built.stderr
    (wheel,) = (tmp / "dist").glob("langgraph_rollback-*.whl")
    assert run(sys.executable, "-m", "venv", tmp / "venv").returncode == 0
    python, cli = (
        tmp / "venv" / "bin" / "python",
        tmp / "venv" / "bin" / "langgraph-rollback",
    )
    done = run(python, "-m", "pip", "install", "--quiet", wheel)
    assert done.returncode == 0, done.stderr
    url = f"postgresql://u:{SECRET}@127.0.0.1:1/x"
    seen: dict[str, Any] = {
        "where": run(python, "-c", "import langgraph_rollback as m; print(m.__file__)"),
        "version": run(cli, "--version"),
        "metadata": run(
            python,
            "-c",
            "import importlib.metadata as m; print(m.version('langgraph-rollback'))",
        ),
        "no_psycopg": run(cli, "threads", url),
        "venv": tmp / "venv",
    }
    extra = run(python, "-m", "pip", "install", "--quiet", f"{wheel}[postgres]")
    assert extra.returncode == 0, extra.stderr
    seen["with_postgres"] = run(cli, "threads", url)
    return seen


@pytest.mark.slow
def test_the_installed_wheel_imports_and_prints_its_version(
    installed: dict[str, Any],
) -> None:
    assert str(installed["venv"]) in installed["where"].stdout
    version = installed["metadata"].stdout.strip()
    assert installed["version"].stdout.strip() == f"langgraph-rollback {version}"


@pytest.mark.slow
def test_the_postgres_extra_without_psycopg_binary_uses_the_system_libpq(
    installed: dict[str, Any],
) -> None:
    reached = installed["with_postgres"]
    assert reached.returncode == 2, reached.stderr
    assert reached.stderr.startswith("error: cannot reach postgresql://u:***@")
    assert SECRET not in reached.stderr


@pytest.mark.slow
def test_the_installed_cli_without_the_extra_says_what_to_install(
    installed: dict[str, Any],
) -> None:
    refused = installed["no_psycopg"]
    assert refused.returncode == 2
    assert "Traceback" not in refused.stderr and "[postgres]" in refused.stderr
