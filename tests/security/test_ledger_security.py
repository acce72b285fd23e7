"""Issue 17, "Safe to read": no code runs from a ledger row, no credential is
printed, nothing leaks from encrypted payloads.

Each bullet of the issue has regression tests here, written against real
SQLite files and a real PostgreSQL server.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import json
import operator
import pickle
import shlex
import sqlite3
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, NamedTuple, TypedDict
from urllib.parse import quote, urlsplit, urlunsplit

import ormsgpack
import psycopg
import pytest
from langchain_core.messages import AIMessage
from langchain_core.tools import tool
from langgraph.checkpoint.serde.encrypted import EncryptedSerializer
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode
from pydantic import BaseModel

from langgraph_rollback import (
    BaseRollbackSaver,
    Effect,
    SerializationError,
    SqliteRollbackSaver,
    ToolRegistry,
    plan_rollback,
    reversible,
    rollback,
)
from langgraph_rollback.viz import timeline
from tests.docs.test_cli import cli, populate
from tests.support import cli_app
from tests.support.cli_in_process import cli_in_process
from tests.support.world import World

BACKENDS = ["sqlite", "postgres"]
SECRET = "Zq7-hunter2-wX4"
"""The password put in every URL of the credential tests."""
AES_KEY = b"0123456789abcdef"


class Log(TypedDict, total=False):
    log: Annotated[list[Any], operator.add]


def cfg(thread: str = "t") -> dict[str, Any]:
    return {"configurable": {"thread_id": thread}}


@contextlib.contextmanager
def open_saver(
    backend: str, db: str, *, serde: Any = None, registry: ToolRegistry | None = None
) -> Iterator[BaseRollbackSaver]:
    """A sync saver on `db` (a SQLite path or a PostgreSQL URL), set up."""
    if backend == "sqlite":
        with SqliteRollbackSaver.from_conn_string(
            db, serde=serde, registry=registry
        ) as saver:
            saver.setup()
            yield saver
        return
    from langgraph_rollback.postgres import PostgresRollbackSaver

    with PostgresRollbackSaver.from_conn_string(
        db, serde=serde, registry=registry
    ) as saver:
        saver.setup()
        yield saver


def database(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    if backend == "sqlite":
        return str(tmp_path / "ledger.sqlite")
    return str(request.getfixturevalue("pg_url"))


def run_sql(db: str, text: str, params: tuple[Any, ...] = ()) -> list[Any]:
    """One statement (with `?` placeholders) over a connection of its own."""
    if db.startswith("postgresql://"):
        with psycopg.connect(db, autocommit=True) as conn:
            cur = conn.execute(text.replace("?", "%s"), params or None)
            return list(cur.fetchall()) if cur.description else []
    with contextlib.closing(sqlite3.connect(db)) as conn, conn:
        return list(conn.execute(text, params).fetchall())


def one_node_graph(node: Callable[[Log], Log]) -> StateGraph[Any]:
    builder = StateGraph(Log)
    builder.add_node("act", node)
    builder.add_edge(START, "act")
    builder.add_edge("act", END)
    return builder


def invoke_error(graph: Any, inputs: Any) -> SerializationError | None:
    """Run `graph` on thread "t"; the typed error it raised, or None."""
    try:
        graph.invoke(inputs, cfg(), durability="sync")
    except SerializationError as exc:
        return exc
    return None


def first_checkpoint(graph: Any, config: dict[str, Any]) -> Any:
    return list(graph.get_state_history(config))[-1]


def _world_tools(
    world: World, registry: ToolRegistry
) -> Callable[[BaseRollbackSaver], Any]:
    """A graph whose node calls `unlock(door, pin)` then `write(name)`."""

    @reversible(undo=lambda e: world.log("inverse", e.tool), registry=registry)
    def unlock(door: str, pin: str) -> str:
        world.log("forward", "unlock", door=door)
        return f"opened {door}"

    @reversible(undo=lambda e: world.path(e.args["name"]).unlink(), registry=registry)
    def write(name: str) -> str:
        world.log("forward", "write", name=name)
        world.path(name).write_text("w")
        return name

    def graph_of(saver: BaseRollbackSaver) -> Any:
        node = lambda s: {"log": [unlock("front", "4821"), write("w.txt")]}  # noqa: E731
        return one_node_graph(node).compile(checkpointer=saver)

    return graph_of


# --- bullet 1: a crafted ledger row runs code when it is merely read ----------
#
# JsonPlusSerializer's msgpack ext hook (langgraph-checkpoint 4.3.2,
# serde/jsonplus.py `_create_msgpack_ext_hook`) imports any module and calls
# any attribute it names when `allowed_msgpack_modules` is True, the default
# unless LANGGRAPH_STRICT_MSGPACK is set: code 0 calls f(arg), 1 f(*args),
# 2 f(**kwargs), 4 and 5 (pydantic v1/v2) f(**kwargs), and 7 (a delta
# snapshot) unpacks a nested payload with the same hook. The payloads below
# name `os.system`, `subprocess.check_call` and `builtins.eval`, each creating
# the marker file, and are written into a real ledger with raw SQL.

HOSTILE_ROW = "f5.txt"
"""The `cli_write` effect of `tests.support.cli_app` whose row is replaced."""
OVERSIZED = 64 * 1024 * 1024
"""Bytes of the oversized payload: far more than any ledger payload needs."""


def ext(code: int, *fields: Any) -> ormsgpack.Ext:
    return ormsgpack.Ext(code, ormsgpack.packb(fields))


def intent(name: Any) -> tuple[str, str, bytes]:
    return "intent", "msgpack", ormsgpack.packb({"args": {"name": name, "text": "5"}})


def outcome(result: Any) -> tuple[str, str, bytes]:
    payload = {"result": result, "after": None, "observed": False}
    return "outcome", "msgpack", ormsgpack.packb(payload)


class _Boom:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> Any:
        return (Path.write_text, (self.marker, "pickle ran"))


def hostile(kind: str, marker: Path) -> tuple[str, str, bytes]:
    """(column, type, data) of a hostile payload; running it creates `marker`."""
    shell = f"touch {shlex.quote(str(marker))}"
    code = f"__import__('pathlib').Path({str(marker)!r}).write_text('eval ran')"
    good = ormsgpack.packb({"args": {"name": HOSTILE_ROW, "text": "5"}})
    match kind:
        case "ext0-os.system":
            return intent(ext(0, "os", "system", shell))
        case "ext1-subprocess.check_call":
            return outcome(ext(1, "subprocess", "check_call", [["touch", str(marker)]]))
        case "ext1-builtins.eval":
            return intent(ext(1, "builtins", "eval", [code]))
        case "ext2-os.system-kwargs":
            return outcome(ext(2, "os", "system", {"command": shell}))
        case "ext4-pydantic-v1":
            return intent(ext(4, "os", "system", {"command": shell}))
        case "ext5-pydantic-v2":
            return outcome(
                ext(5, "os", "system", {"command": shell}, "model_validate_json")
            )
        case "ext7-nested":
            inner = ormsgpack.packb(ext(0, "os", "system", shell))
            return intent(ormsgpack.Ext(7, inner))
        case "ext0-in-undo":
            payload = {"result": ext(0, "os", "system", shell), "error": None}
            return "undo", "msgpack", ormsgpack.packb(payload)
        case "json-lc2-constructor":
            envelope = {"lc": 2, "type": "constructor", "id": ["os", "system"]}
            payload = {"args": {"name": {**envelope, "args": [shell]}}}
            return "intent", "json", json.dumps(payload).encode()
        case "pickle-intent":
            return "intent", "pickle", pickle.dumps({"args": {"name": _Boom(marker)}})
        case "pickle-outcome":
            return "outcome", "pickle", pickle.dumps({"result": _Boom(marker)})
        case "truncated":
            return "intent", "msgpack", good[:-4]
        case "header-bomb":  # a map whose array claims 2**32-1 items
            return "intent", "msgpack", b"\x81\xa4args\xdd\xff\xff\xff\xff"
        case "deep-nesting":
            return "intent", "msgpack", b"\x81\xa4args" + b"\x91" * 100_000 + b"\xc0"
        case "oversized":
            return outcome("x" * OVERSIZED)
    raise AssertionError(kind)


HOSTILE_KINDS = [
    "ext0-os.system",
    "ext1-subprocess.check_call",
    "ext1-builtins.eval",
    "ext2-os.system-kwargs",
    "ext4-pydantic-v1",
    "ext5-pydantic-v2",
    "ext7-nested",
    "ext0-in-undo",
    "json-lc2-constructor",
    "oversized",
    "pickle-intent",
    "pickle-outcome",
    "truncated",
    "header-bomb",
    "deep-nesting",
]


def plant(db: str, effect: Effect, kind: str, marker: Path) -> None:
    """Replace one payload of `effect`'s row with a hostile one, in raw SQL."""
    column, type_, data = hostile(kind, marker)
    run_sql(
        db,
        f"UPDATE lgrb_effects SET {column}_type = ?, {column} = ? WHERE effect_id = ?",
        (type_, data, effect.id),
    )


def refused(read: Callable[[], Any], marker: Path) -> SerializationError | None:
    """Run `read`; the typed error it raised, or None when it returned.

    Either way the hostile payload must not have run.
    """
    try:
        read()
    except SerializationError as exc:
        return exc
    finally:
        assert not marker.exists(), f"the payload ran: {marker.read_text()!r}"
    return None


IN_A_SUBPROCESS = {"ext0-os.system", "deep-nesting"}
"""The kinds whose CLI reads run in a subprocess of their own, as a user runs
the command; the others call the CLI's entry point in this process (the same
argv, stdout, stderr and exit code), without the interpreter's start-up."""


@pytest.mark.parametrize("kind", HOSTILE_KINDS)
@pytest.mark.parametrize("backend", BACKENDS)
def test_hostile_row_is_refused_on_every_reading_path(
    backend: str,
    kind: str,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    app_dir = tmp_path / "app"
    app_dir.mkdir()
    marker = tmp_path / "marker"
    db = database(backend, tmp_path, request)
    populate(db, app_dir, monkeypatch)  # 12 cli_write effects, then cli_announce
    with open_saver(backend, db) as saver:
        effects = saver.list_effects(cfg())
        bad = next(e for e in effects if e.args.get("name") == HOSTILE_ROW)
        good = [e for e in effects if e.id != bad.id]
        plant(db, bad, kind, marker)
        graph = cli_app.builder.compile(checkpointer=saver)
        first = first_checkpoint(graph, cfg())

        # Listing the thread: a typed error, or every other row.
        listed = refused(lambda: saver.list_effects(cfg()), marker)
        if listed is None:
            ids = [e.id for e in saver.list_effects(cfg())]
            assert bad.id not in ids, "the hostile row was decoded and listed"
            assert {e.id for e in good} <= set(ids)
        assert refused(lambda: saver.get_effect(cfg(), bad.id), marker) is not None
        # The other rows stay readable, one by one.
        assert [saver.get_effect(cfg(), e.id) for e in good] == good
        assert (
            refused(lambda: plan_rollback(graph, cfg(), to=first), marker) is not None
        )
        assert refused(lambda: rollback(graph, cfg(), to=first), marker) is not None
        drawn = refused(lambda: timeline(saver, cfg()), marker)
        if drawn is None:
            shown = {
                e.id for c in timeline(saver, cfg()).checkpoints for e in c.effects
            }
            assert bad.id not in shown, "the hostile row was decoded and drawn"
            assert {e.id for e in good} <= shown

    env = {"CLI_APP_DIR": str(app_dir)}
    run_cli = cli if kind in IN_A_SUBPROCESS else cli_in_process
    table = run_cli("effects", db, "--thread", "t", env=env)
    assert "Traceback" not in table.stderr, table.stderr
    if table.returncode == 0:
        assert sum("cli_write" in line for line in table.stdout.splitlines()) == 11
    else:
        assert table.returncode == 2 and table.stderr.startswith("error: ")
    graph_spec = ("--to", "first", "--graph", "tests.support.cli_app:builder")
    for command in (("plan",), ("rollback", "--yes")):
        args = (command[0], db, "--thread", "t", *graph_spec, *command[1:])
        run = run_cli(*args, env=env)
        assert run.returncode == 2, run.stdout + run.stderr
        assert run.stderr.startswith("error: ") and "Traceback" not in run.stderr

    assert not marker.exists(), marker.read_text()
    # Nothing was undone: a rollback that cannot read a row refuses up front.
    assert len(list(app_dir.iterdir())) == 12


@pytest.mark.parametrize("kind", ["ext0-os.system", "ext1-subprocess.check_call"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_cli_effects_on_a_hostile_row_runs_nothing(
    backend: str,
    kind: str,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The issue's own case: `langgraph-rollback effects` is the first reader."""
    app_dir = tmp_path / "app"
    app_dir.mkdir()
    marker = tmp_path / "marker"
    db = database(backend, tmp_path, request)
    populate(db, app_dir, monkeypatch)
    with open_saver(backend, db) as saver:
        effects = saver.list_effects(cfg())
    plant(
        db, next(e for e in effects if e.args.get("name") == HOSTILE_ROW), kind, marker
    )
    table = cli("effects", db, "--thread", "t", env={"CLI_APP_DIR": str(app_dir)})
    assert not marker.exists(), "the payload ran in `langgraph-rollback effects`"
    assert "Traceback" not in table.stderr, table.stderr
    if table.returncode == 0:
        assert sum("cli_write" in line for line in table.stdout.splitlines()) == 11
    else:
        assert table.returncode == 2 and table.stderr.startswith("error: ")


def test_refusal_names_the_hostile_row(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app_dir = tmp_path / "app"
    app_dir.mkdir()
    marker = tmp_path / "marker"
    db = str(tmp_path / "ledger.sqlite")
    populate(db, app_dir, monkeypatch)
    with open_saver("sqlite", db) as saver:
        bad = next(
            e for e in saver.list_effects(cfg()) if e.args.get("name") == HOSTILE_ROW
        )
        plant(db, bad, "pickle-intent", marker)
        error = refused(lambda: saver.list_effects(cfg()), marker)
    assert error is not None and not marker.exists()
    table = cli("effects", db, "--thread", "t", env={"CLI_APP_DIR": str(app_dir)})
    assert bad.id in str(error), str(error)
    assert bad.id in table.stderr, table.stderr


def test_plaintext_row_under_an_encrypted_serde_is_refused(
    tmp_path: Path, world: World, registry: ToolRegistry
) -> None:
    """EncryptedSerializer loads a payload whose type has no `+cipher` without
    decrypting it, so whoever can write the database can skip the key."""
    marker = tmp_path / "marker"
    db = str(tmp_path / "enc.sqlite")
    serde = EncryptedSerializer.from_pycryptodome_aes(key=AES_KEY)
    graph_of = _world_tools(world, registry)
    with open_saver("sqlite", db, serde=serde, registry=registry) as saver:
        graph = graph_of(saver)
        graph.invoke({"log": []}, cfg(), durability="sync")
        first, second = sorted(saver.list_effects(cfg()), key=lambda e: e.seq)
        assert run_sql(db, "SELECT intent_type FROM lgrb_effects")[0][0].endswith(
            "+aes"
        )
        plant(db, second, "ext0-os.system", marker)
        error = refused(lambda: saver.get_effect(cfg(), second.id), marker)
        assert saver.get_effect(cfg(), first.id) == first
    assert not marker.exists()
    assert error is not None


# --- bullet 1: types not on the allow-list are refused at record time ---------


@dataclass
class Point:
    x: int
    y: int


class Box(BaseModel):
    label: str


class Colour(enum.Enum):
    RED = "red"


class Pair(NamedTuple):
    a: int
    b: int


UNLISTED = {
    "dataclass": Point(1, 2),
    "pydantic": Box(label="b"),
    "enum": Colour.RED,
    "namedtuple": Pair(1, 2),
}


def _placing_graph(
    saver: BaseRollbackSaver, world: World, registry: ToolRegistry, value: Any
) -> Any:
    @reversible(undo=lambda e: world.log("inverse", "place"), registry=registry)
    def place(name: str, where: Any) -> str:
        world.log("forward", "place", name=name)
        world.path(name).write_text("placed")
        return name

    return one_node_graph(lambda s: {"log": [place("p.txt", value)]}).compile(
        checkpointer=saver
    )


@pytest.mark.parametrize("value", list(UNLISTED), ids=list(UNLISTED))
def test_argument_of_an_unlisted_type_is_refused_before_the_call(
    saver: BaseRollbackSaver, registry: ToolRegistry, world: World, value: str
) -> None:
    graph = _placing_graph(saver, world, registry, UNLISTED[value])
    error = invoke_error(graph, {"log": []})
    assert world.count("forward", "place") == 0, "the call ran"
    assert error is not None
    assert "'where'" in str(error) and "allowed_msgpack_modules" in str(error), error
    assert world.listing() == {}
    assert saver.list_effects(cfg()) == []


def test_result_of_an_unlisted_type_is_refused_and_the_effect_kept(
    saver: BaseRollbackSaver, registry: ToolRegistry, world: World
) -> None:
    @reversible(undo=lambda e: world.path("m.txt").unlink(), registry=registry)
    def measure(name: str) -> Any:
        world.log("forward", "measure", name=name)
        world.path(name).write_text("measured")
        return Point(3, 4)

    graph = one_node_graph(lambda s: {"log": [measure("m.txt")]}).compile(
        checkpointer=saver
    )
    with pytest.raises(SerializationError) as info:
        graph.invoke({"log": []}, cfg(), durability="sync")
    message = str(info.value)
    assert "result" in message and "allowed_msgpack_modules" in message, message
    assert world.count("forward", "measure") == 1
    (effect,) = saver.list_effects(cfg())
    assert effect.status.value == "applied" and effect.result is None
    assert rollback(graph, cfg(), to=first_checkpoint(graph, cfg())).ok
    assert world.listing() == {}


@pytest.mark.parametrize("backend", BACKENDS)
def test_type_allowed_through_allowed_msgpack_modules_is_recorded(
    backend: str,
    tmp_path: Path,
    world: World,
    registry: ToolRegistry,
    request: pytest.FixtureRequest,
) -> None:
    """What the user allows through the serializer's own mechanism is stored,
    and reads back as the same type."""
    serde = JsonPlusSerializer(allowed_msgpack_modules=[Point])

    @reversible(undo=lambda e: world.path(e.args["name"]).unlink(), registry=registry)
    def place(name: str, where: Point) -> Point:
        world.log("forward", "place", name=name)
        world.path(name).write_text(f"{where.x},{where.y}")
        return Point(where.y, where.x)

    db = database(backend, tmp_path, request)
    with open_saver(backend, db, serde=serde, registry=registry) as saver:
        graph = one_node_graph(
            lambda s: {"log": [place("p.txt", Point(1, 2)).x]}
        ).compile(checkpointer=saver)
        assert graph.invoke({"log": []}, cfg(), durability="sync") == {"log": [2]}
        (effect,) = saver.list_effects(cfg())
        assert effect.args == {"name": "p.txt", "where": Point(1, 2)}
        assert effect.result == Point(2, 1)
        assert rollback(graph, cfg(), to=first_checkpoint(graph, cfg())).ok
    assert world.count("forward", "place") == 1
    assert world.listing() == {}


# --- bullet 2: a serde with pickle_fallback=True -------------------------------


class Opaque:
    """A plain object: msgpack cannot encode it, pickle can."""

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Opaque)

    __hash__ = object.__hash__


def no_pickle_in_the_ledger(db: str) -> None:
    types = run_sql(db, "SELECT intent_type, outcome_type, undo_type FROM lgrb_effects")
    assert not [t for row in types for t in row if t and "pickle" in t], types


@pytest.mark.parametrize("backend", BACKENDS)
def test_pickle_fallback_result_leaves_the_ledger_readable_and_undoable(
    backend: str,
    tmp_path: Path,
    world: World,
    registry: ToolRegistry,
    request: pytest.FixtureRequest,
) -> None:
    def remove(effect: Effect) -> None:
        world.log("inverse", effect.tool)
        world.path(effect.args["name"]).unlink()

    @reversible(undo=remove, registry=registry)
    def write(name: str) -> str:
        world.log("forward", "write", name=name)
        world.path(name).write_text("w")
        return name

    @reversible(undo=remove, registry=registry)
    def mint(name: str) -> Opaque:
        world.log("forward", "mint", name=name)
        world.path(name).write_text("m")
        return Opaque()

    db = database(backend, tmp_path, request)
    serde = JsonPlusSerializer(pickle_fallback=True)
    with open_saver(backend, db, serde=serde, registry=registry) as saver:
        graph = one_node_graph(
            lambda s: {"log": [write("a.txt"), str(mint("b.txt"))]}
        ).compile(checkpointer=saver)
        # The ledger may refuse the result; the call has happened either way.
        with contextlib.suppress(SerializationError):
            graph.invoke({"log": []}, cfg(), durability="sync")
        assert world.listing() == {"a.txt": "w", "b.txt": "m"}
        no_pickle_in_the_ledger(db)
        effects = saver.list_effects(cfg())
        assert [e.tool for e in effects] == ["mint", "write"]
        assert rollback(graph, cfg(), to=first_checkpoint(graph, cfg())).ok
    assert world.listing() == {}
    assert world.count("inverse") == 2


@pytest.mark.parametrize("backend", BACKENDS)
def test_pickle_fallback_argument_is_refused_before_the_call(
    backend: str,
    tmp_path: Path,
    world: World,
    registry: ToolRegistry,
    request: pytest.FixtureRequest,
) -> None:
    """Under a `ToolNode` the call is keyed by its id, so nothing but the
    saver's serde sees the arguments before the call."""

    @reversible(undo=lambda e: world.path(e.args["name"]).unlink(), registry=registry)
    @tool
    def tag_file(name: str, tag: Any) -> str:
        """Create the file `name`, tagged."""
        world.log("forward", "tag_file", name=name)
        world.path(name).write_text("tagged")
        return name

    def model(state: MessagesState) -> dict[str, Any]:
        if state["messages"]:
            return {}
        call = {"name": "tag_file", "args": {"name": "t.txt", "tag": Opaque()}}
        return {"messages": [AIMessage("", tool_calls=[{**call, "id": "c1"}])]}

    builder = StateGraph(MessagesState)
    builder.add_node("model", model)
    builder.add_node("tools", ToolNode([tag_file], handle_tool_errors=False))
    builder.add_edge(START, "model")
    builder.add_edge("model", "tools")
    builder.add_edge("tools", END)
    db = database(backend, tmp_path, request)
    serde = JsonPlusSerializer(pickle_fallback=True)
    with open_saver(backend, db, serde=serde, registry=registry) as saver:
        graph = builder.compile(checkpointer=saver)
        error = invoke_error(graph, {"messages": []})
        assert world.count("forward", "tag_file") == 0, "the call ran"
        assert error is not None and "'tag'" in str(error)
        no_pickle_in_the_ledger(db)
        assert saver.list_effects(cfg()) == []


# --- bullet 3: under EncryptedSerializer, the plaintext call_key --------------


def clear_text_cells(db: str) -> list[str]:
    """Every TEXT value of every row of the ledger's tables."""
    if db.startswith("postgresql://"):
        tables = [
            r[0]
            for r in run_sql(
                db,
                "SELECT table_name FROM information_schema.tables "
                "WHERE table_name LIKE 'lgrb%'",
            )
        ]
    else:
        tables = [
            r[0]
            for r in run_sql(
                db,
                "SELECT name FROM sqlite_master WHERE type = 'table' "
                "AND name LIKE 'lgrb%'",
            )
        ]
    cells: list[str] = []
    for table in tables:
        for row in run_sql(db, f"SELECT * FROM {table}"):
            cells += [v for v in row if isinstance(v, str)]
    return cells


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_pin_cannot_be_brute_forced_from_the_clear_columns(
    backend: str,
    tmp_path: Path,
    world: World,
    registry: ToolRegistry,
    request: pytest.FixtureRequest,
) -> None:
    # reaches into the ledger's core: the digest functions the keys use today
    from langgraph_rollback.core.identity import args_digest, effect_id_for

    db = database(backend, tmp_path, request)
    serde = EncryptedSerializer.from_pycryptodome_aes(key=AES_KEY)
    graph_of = _world_tools(world, registry)
    with open_saver(backend, db, serde=serde, registry=registry) as saver:
        graph_of(saver).invoke({"log": []}, cfg(), durability="sync")
    assert world.count("forward", "unlock") == 1
    ((call_key, task_ns, task_id, intent_type, blob),) = run_sql(
        db,
        "SELECT call_key, task_ns, task_id, intent_type, intent FROM lgrb_effects "
        "WHERE tool = 'unlock'",
    )
    assert intent_type.endswith("+aes") and b"4821" not in bytes(blob)
    cells = clear_text_cells(db)
    assert call_key in cells and not any("4821" in c for c in cells)

    found = []
    for n in range(10_000):
        pin = f"{n:04d}"
        digest = args_digest("unlock", {"door": "front", "pin": pin})
        eid = effect_id_for(task_ns, task_id, f"unlock:{digest}#0")
        if any(digest in cell or eid in cell for cell in cells):
            found.append(pin)
    assert found == []


# --- bullet 4: the CLI prints database passwords --------------------------------


def with_password(url: str, form: str, *, port: int | None = None) -> tuple[str, str]:
    """`url` carrying a password in its userinfo or in `?password=`; and the
    password. A password already in `url` (a real server's) is kept."""
    parts = urlsplit(url)
    password = parts.password or SECRET
    host = f"{parts.hostname}:{port or parts.port}"
    user = quote(parts.username or "postgres")
    if form == "userinfo":
        netloc, query = f"{user}:{quote(password)}@{host}", parts.query
    else:
        netloc = f"{user}@{host}"
        query = "&".join(q for q in (parts.query, f"password={quote(password)}") if q)
    return urlunsplit((parts.scheme, netloc, parts.path, query, "")), password


def server_url(pg_url: str, server: str, form: str) -> tuple[str, str]:
    """A URL with a password for the test server ("reachable"), for a closed
    port ("unreachable"), or for a role the server refuses ("refused")."""
    url, password = with_password(
        pg_url, form, port=1 if server == "unreachable" else None
    )
    if server == "refused":
        user = urlsplit(url).username
        url = url.replace(f"//{user}", "//lgrb_no_such_role", 1)
    return url, password


def malformed(form: str) -> str:
    """A URL libpq cannot parse (an unclosed IPv6 bracket), with a password."""
    if form == "userinfo":
        return f"postgresql://postgres:{SECRET}@[::1:1/agents"
    return f"postgresql://postgres@[::1:1/agents?password={SECRET}"


def cli_outputs(
    url: str, app_dir: Path, run_cli: Callable[..., Any] = cli
) -> Iterator[tuple[str, str]]:
    """(command, stdout + stderr) of every CLI command against `url`."""
    env = {"CLI_APP_DIR": str(app_dir)}
    graph = ("--to", "first", "--graph", "tests.support.cli_app:builder")
    commands = [
        ("effects", url, "--thread", "t"),
        ("effects", url, "--thread", "t", "--json"),
        ("plan", url, "--thread", "t", *graph),
        ("rollback", url, "--thread", "t", *graph, "--yes"),
        ("migrate", url, "--print-sql"),
        ("migrate", url),
    ]
    for command in commands:
        done = run_cli(*command, env=env)
        yield " ".join(command[:1] + command[2:]), done.stdout + done.stderr


@pytest.mark.slow
@pytest.mark.parametrize(
    ("server", "form"),
    [
        ("reachable", "userinfo"),
        ("reachable", "query"),
        ("unreachable", "userinfo"),
        ("unreachable", "query"),
        ("refused", "userinfo"),
        ("refused", "query"),
        ("malformed", "userinfo"),
        ("malformed", "query"),
    ],
)
def test_no_cli_command_prints_the_password(
    server: str, form: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """Every command, on a database without ledger tables and then with
    them (reachable), on a closed port, for a role the server refuses, and
    for a URL libpq cannot parse."""
    app_dir = tmp_path / "app"
    app_dir.mkdir()
    if server == "malformed":
        url, password = malformed(form), SECRET
    else:
        url, password = server_url(str(request.getfixturevalue("pg_url")), server, form)
    # A few cases run each command in a subprocess, as a user does; the others
    # call the CLI's entry point in this process (same argv and output).
    run_cli = (
        cli
        if form == "userinfo" and server in ("reachable", "refused")
        else cli_in_process
    )
    outputs = list(cli_outputs(url, app_dir, run_cli))
    if server == "reachable":  # now with the ledger's tables
        outputs += list(cli_outputs(url, app_dir, run_cli))
    leaked = [
        f"{command}: {line}"
        for command, text in outputs
        for line in text.splitlines()
        if password in line
    ]
    assert not leaked, "\n".join(leaked)


@pytest.mark.parametrize("flavour", ["sync", "async"])
@pytest.mark.parametrize("form", ["userinfo", "query"])
@pytest.mark.parametrize("server", ["unreachable", "refused"])
def test_saver_connection_errors_do_not_carry_the_password(
    server: str, form: str, flavour: str, pg_url: str
) -> None:
    url, password = server_url(pg_url, server, form)
    error = _connect_error(url, flavour)
    assert password not in "".join(traceback.format_exception(error))


@pytest.mark.parametrize("flavour", ["sync", "async"])
@pytest.mark.parametrize("form", ["userinfo", "query"])
def test_saver_error_for_a_malformed_url_does_not_carry_the_password(
    form: str, flavour: str
) -> None:
    error = _connect_error(malformed(form), flavour)
    assert SECRET not in "".join(traceback.format_exception(error))


def _connect_error(url: str, flavour: str) -> BaseException:
    from langgraph_rollback.postgres import (
        AsyncPostgresRollbackSaver,
        PostgresRollbackSaver,
    )

    async def aopen() -> None:
        async with AsyncPostgresRollbackSaver.from_conn_string(url) as saver:
            await saver.setup()

    try:
        if flavour == "sync":
            with PostgresRollbackSaver.from_conn_string(url) as saver:
                saver.setup()
        else:
            asyncio.run(asyncio.wait_for(aopen(), 60))
    except Exception as exc:
        return exc
    raise AssertionError(f"connected to {url!r}")
