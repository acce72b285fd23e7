"""Probes of issue 17's promises: reading a ledger row runs nothing, no
credential is printed, nothing leaks from (or is forged into) encrypted
payloads.

Each probe writes into a real SQLite ledger (raw SQL) and reads it back
through the library; a marker file proves that nothing ran.
"""

from __future__ import annotations

import shlex
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import ormsgpack
import psycopg
import pytest
from langchain_core.runnables import Runnable
from langgraph.checkpoint.serde.encrypted import EncryptedSerializer

from langgraph_rollback import SerializationError, ToolRegistry
from tests.docs.test_cli import ROOT, cli, populate
from tests.security.test_ledger_security import (
    AES_KEY,
    HOSTILE_ROW,
    _world_tools,
    cfg,
    ext,
    open_saver,
    refused,
    run_sql,
)
from tests.support.world import World

SECRET = "Zq7hunter2wX4"


def _hostile_db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[str, Any]:
    """A SQLite ledger of `tests.support.cli_app`, and the effect to spoil."""
    app_dir = tmp_path / "app"
    app_dir.mkdir()
    db = str(tmp_path / "ledger.sqlite")
    populate(db, app_dir, monkeypatch)
    with open_saver("sqlite", db) as saver:
        effects = saver.list_effects(cfg())
    return db, next(e for e in effects if e.args.get("name") == HOSTILE_ROW)


def _plant_name(db: str, effect_id: str, name: Any) -> None:
    """Make the row's `name` argument the (hostile) msgpack value `name`."""
    data = ormsgpack.packb({"args": {"name": name, "text": "5"}})
    run_sql(
        db,
        "UPDATE lgrb_effects SET intent_type = 'msgpack', intent = ? "
        "WHERE effect_id = ?",
        (data, effect_id),
    )


def _nested(kind: str, marker: Path) -> Any:
    """An allowed container or type holding a hostile extension."""
    shell = ext(0, "os", "system", f"touch {shlex.quote(str(marker))}")
    match kind:
        case "tuple":
            return ext(0, "builtins", "tuple", [shell])
        case "set":
            return ext(0, "builtins", "set", [shell])
        case "deque":
            return ext(0, "collections", "deque", [shell])
        case "dict":
            return {"k": [shell]}
        case "aimessage-content":
            fields = {"content": [shell]}
            ai = ("langchain_core.messages.ai", "AIMessage")
            return ext(5, *ai, fields, "model_validate_json")
        case "send-arg":
            return ext(1, "langgraph.types", "Send", ["node", shell])
        case "command-goto":
            return ext(2, "langgraph.types", "Command", {"goto": shell})
        case "own-module-attr":  # a module attribute, not a type
            return ext(1, "langgraph_rollback.core.ledger_codec", "importlib", ["os"])
        case "missing-lc-module":
            return ext(0, "langchain_core.no_such_module", "X", 1)
        case "zoneinfo-traversal":
            return ext(0, "zoneinfo", "ZoneInfo", "../../../../etc/passwd")
        case "zoneinfo-absolute":
            return ext(0, "zoneinfo", "ZoneInfo", "/etc/passwd")
        case "timedelta-overflow":
            return ext(1, "datetime", "timedelta", [2**62, 0, 0])
        case "method-not-listed":
            return ext(3, "datetime", "datetime", "x", "now")
    raise AssertionError(kind)


NESTED = [
    "tuple",
    "set",
    "deque",
    "dict",
    "aimessage-content",
    "send-arg",
    "command-goto",
    "own-module-attr",
    "missing-lc-module",
    "zoneinfo-traversal",
    "zoneinfo-absolute",
    "timedelta-overflow",
    "method-not-listed",
]


@pytest.mark.parametrize("kind", NESTED)
def test_hostile_value_nested_in_an_allowed_type_is_refused(
    kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    marker = tmp_path / "marker"
    db, bad = _hostile_db(tmp_path, monkeypatch)
    _plant_name(db, bad.id, _nested(kind, marker))
    with open_saver("sqlite", db) as saver:
        assert refused(lambda: saver.get_effect(cfg(), bad.id), marker) is not None
        refused(lambda: saver.list_effects(cfg()), marker)
    assert not marker.exists()


def test_compiled_pattern_is_not_matched_when_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A catastrophic pattern costs nothing to read: it is compiled, never run."""
    db, bad = _hostile_db(tmp_path, monkeypatch)
    _plant_name(db, bad.id, ext(1, "re", "compile", ["(a+)+$", 0]))
    with open_saver("sqlite", db) as saver:
        started = time.monotonic()
        effect = saver.get_effect(cfg(), bad.id)
    assert effect.args["name"].pattern == "(a+)+$"
    assert time.monotonic() - started < 5


READER = textwrap.dedent(
    """
    import sys
    from langgraph_rollback import SerializationError, SqliteRollbackSaver
    with SqliteRollbackSaver.from_conn_string(DB) as saver:
        try:
            saver.list_effects({"configurable": {"thread_id": "t"}})
        except SerializationError:
            print("refused")
    print("read done")
    """
)


def test_row_naming_the_cli_module_runs_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The reader's own argv (`migrate <marker>`) is what the CLI would run:
    the marker is a SQLite file that only `migrate` creates."""
    marker = tmp_path / "marker.sqlite"
    db, bad = _hostile_db(tmp_path, monkeypatch)
    _plant_name(db, bad.id, ext(0, "langgraph_rollback.__main__", "main", 0))
    script = f"DB = {db!r}\n" + READER
    done = subprocess.run(
        [sys.executable, "-c", script, "migrate", str(marker)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert not marker.exists(), "reading the row ran `langgraph-rollback migrate`"
    assert done.stdout.splitlines() == ["refused", "read done"], done


def test_runnable_nested_in_an_allowed_model_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db, bad = _hostile_db(tmp_path, monkeypatch)
    prompt = {"template": "{a}", "input_variables": ["a"]}
    fields = {"examples": [{"a": "x"}], "example_prompt": prompt}
    selector = (
        "langchain_core.example_selectors.length_based",
        "LengthBasedExampleSelector",
    )
    _plant_name(db, bad.id, ext(5, *selector, fields, "model_validate_json"))
    with open_saver("sqlite", db) as saver:
        try:
            read = saver.get_effect(cfg(), bad.id).args["name"]
        except SerializationError:
            return
    assert not isinstance(read.example_prompt, Runnable)


# --- encrypted payloads: other ciphers, swapped rows, the digest key ----------


def _encrypted_db(
    tmp_path: Path, world: World, registry: ToolRegistry
) -> tuple[str, Any, dict[str, Any]]:
    """A ledger of `unlock(front, 4821)` then `write(w.txt)`, encrypted."""
    db = str(tmp_path / "enc.sqlite")
    serde = EncryptedSerializer.from_pycryptodome_aes(key=AES_KEY)
    with open_saver("sqlite", db, serde=serde, registry=registry) as saver:
        _world_tools(world, registry)(saver).invoke({"log": []}, cfg())
        effects = {e.tool: e for e in saver.list_effects(cfg())}
    return db, serde, effects


def test_row_with_another_cipher_name_is_refused(
    tmp_path: Path, world: World, registry: ToolRegistry
) -> None:
    db, serde, effects = _encrypted_db(tmp_path, world, registry)
    run_sql(
        db,
        "UPDATE lgrb_effects SET intent_type = 'msgpack+rot13' WHERE tool = 'write'",
    )
    with open_saver("sqlite", db, serde=serde, registry=registry) as saver:
        with pytest.raises(SerializationError):
            saver.get_effect(cfg(), effects["write"].id)
        assert saver.get_effect(cfg(), effects["unlock"].id) == effects["unlock"]


def test_encrypted_row_read_without_the_cipher_is_refused(
    tmp_path: Path, world: World, registry: ToolRegistry
) -> None:
    db, _, effects = _encrypted_db(tmp_path, world, registry)
    with (
        open_saver("sqlite", db, registry=registry) as saver,
        pytest.raises(SerializationError) as info,
    ):
        saver.get_effect(cfg(), effects["unlock"].id)
    assert "4821" not in str(info.value)


@pytest.mark.xfail(
    strict=True,
    reason="known defect: ciphertexts are not bound to their row; a payload "
    "copied from another effect decrypts and is read as this effect's",
)
def test_ciphertext_moved_between_rows_is_refused(
    tmp_path: Path, world: World, registry: ToolRegistry
) -> None:
    """Someone who can write the database, without the key, makes `write`'s
    undo act on `unlock`'s arguments."""
    db, serde, effects = _encrypted_db(tmp_path, world, registry)
    run_sql(
        db,
        "UPDATE lgrb_effects SET intent = (SELECT intent FROM lgrb_effects "
        "WHERE tool = 'unlock') WHERE tool = 'write'",
    )
    with open_saver("sqlite", db, serde=serde, registry=registry) as saver:
        try:
            read = saver.get_effect(cfg(), effects["write"].id)
        except SerializationError:
            return
    assert read.args == effects["write"].args, read.args


def test_corrupted_digest_key_is_a_typed_error(
    tmp_path: Path, world: World, registry: ToolRegistry
) -> None:
    from langgraph_rollback import RollbackError

    db, serde, _ = _encrypted_db(tmp_path, world, registry)
    run_sql(db, "UPDATE lgrb_keys SET value = ?", (b"\x00" * 64,))
    with (
        pytest.raises(RollbackError, match="digest key"),
        open_saver("sqlite", db, serde=serde, registry=registry) as saver,
    ):
        _world_tools(world, registry)(saver).invoke({"log": []}, cfg("t2"))
    assert world.count("forward", "unlock") == 1


def test_deleted_digest_key_is_a_typed_error(
    tmp_path: Path, world: World, registry: ToolRegistry
) -> None:
    from langgraph_rollback import RollbackError

    db, serde, _ = _encrypted_db(tmp_path, world, registry)
    (before,) = run_sql(db, "SELECT value FROM lgrb_keys")
    run_sql(db, "DELETE FROM lgrb_keys")
    try:
        with open_saver("sqlite", db, serde=serde, registry=registry):
            pass
    except RollbackError:
        return
    assert run_sql(db, "SELECT value FROM lgrb_keys") == [before]


async def _set_up(flavour: str, db: str, serde: Any) -> None:
    """`setup()` of a fresh saver of `flavour` on `db`."""
    from langgraph_rollback import AsyncSqliteRollbackSaver
    from langgraph_rollback.postgres import AsyncPostgresRollbackSaver

    if not flavour.startswith("aio"):
        with open_saver(flavour, db, serde=serde, registry=ToolRegistry()):
            return
    aio: Any = AsyncSqliteRollbackSaver
    if flavour == "aio_postgres":
        aio = AsyncPostgresRollbackSaver
    async with aio.from_conn_string(db, serde=serde) as saver:
        await saver.setup()


@pytest.mark.postgres
@pytest.mark.parametrize(
    "flavour", ["sqlite", "aio_sqlite", "postgres", "aio_postgres"]
)
async def test_every_saver_refuses_a_ledger_whose_digest_key_was_deleted(
    flavour: str, tmp_path: Path, world: World, registry: ToolRegistry, request: Any
) -> None:
    from langgraph_rollback import RollbackError

    postgres = "postgres" in flavour
    db = str(request.getfixturevalue("pg_url")) if postgres else str(tmp_path / "e.db")
    serde = EncryptedSerializer.from_pycryptodome_aes(key=AES_KEY)
    backend = "postgres" if postgres else "sqlite"
    with open_saver(backend, db, serde=serde, registry=registry) as saver:
        _world_tools(world, registry)(saver).invoke({"log": []}, cfg())
    run_sql(db, "DELETE FROM lgrb_keys")
    with pytest.raises(RollbackError, match=r"lgrb_keys.*Fix: restore"):
        await _set_up(flavour, db, serde)
    assert run_sql(db, "SELECT name FROM lgrb_keys") == []
    assert world.count("forward", "unlock") == 1


def test_same_call_in_two_databases_gets_unrelated_call_keys(
    tmp_path: Path, registry: ToolRegistry
) -> None:
    """The digest is keyed per database (an HMAC), not a plain hash."""
    keys = []
    for name in ("a", "b"):
        world = World(tmp_path / f"world-{name}")
        (tmp_path / name).mkdir()
        db, _, _ = _encrypted_db(tmp_path / name, world, registry)
        keys.append(run_sql(db, "SELECT call_key FROM lgrb_effects ORDER BY seq"))
        registry = ToolRegistry()
    assert len(keys[0]) == 2 and not set(keys[0]) & set(keys[1])


def test_forced_rollback_keeps_no_observed_value_in_the_clear(
    tmp_path: Path, world: World, registry: ToolRegistry
) -> None:
    from langgraph_rollback import reversible, rollback
    from tests.security.test_ledger_security import (
        clear_text_cells,
        first_checkpoint,
        one_node_graph,
    )

    def observe(name: str, **_: Any) -> str | None:
        path = world.path(name)
        return path.read_text() if path.exists() else None

    @reversible(
        undo=lambda e: world.path(e.args["name"]).unlink(),
        observe=observe,
        registry=registry,
    )
    def store(name: str, text: str) -> str:
        world.path(name).write_text(text)
        return name

    db = str(tmp_path / "enc.sqlite")
    serde = EncryptedSerializer.from_pycryptodome_aes(key=AES_KEY)
    with open_saver("sqlite", db, serde=serde, registry=registry) as saver:
        graph = one_node_graph(
            lambda s: {"log": [store("s.txt", f"pin {SECRET}")]}
        ).compile(checkpointer=saver)
        graph.invoke({"log": []}, cfg())
        world.path("s.txt").write_text("changed by someone else")
        first = first_checkpoint(graph, cfg())
        assert rollback(graph, cfg(), to=first, on_conflict="force").ok
    assert world.listing() == {}
    leaked = [c for c in clear_text_cells(db) if SECRET in c]
    assert not leaked, leaked


# --- credentials in the CLI's output ----------------------------------------


def _url(kind: str) -> str:
    """A URL for a closed port with `SECRET` in it, `kind` of way."""
    host = "127.0.0.1:1/agents"
    match kind:
        case "percent-encoded-at":
            return f"postgresql://u:{SECRET[:4]}%40{SECRET[4:]}@{host}"
        case "query-password":
            return f"postgresql://u@{host}?password={SECRET}"
        case "keyword-dsn":
            return f"host=127.0.0.1 port=1 password={SECRET} dbname=agents"
        case "unencoded-at":
            return f"postgresql://u:{SECRET[:4]}@{SECRET[4:]}@{host}"
        case "unencoded-slash":
            return f"postgresql://u:{SECRET[:4]}/{SECRET[4:]}@{host}"
        case "unencoded-hash":
            return f"postgresql://u:{SECRET[:4]}#{SECRET[4:]}@{host}"
        case "sslpassword":
            return f"postgresql://u@{host}?sslpassword={SECRET}"
        case "percent-encoded-keyword":
            return f"postgresql://u@{host}?%70assword={SECRET}"
        case "keyword-dsn-escaped-quote":
            return f"host=127.0.0.1 port=1 password='a\\' {SECRET}' dbname=agents"
    raise AssertionError(kind)


def _leak(kind: str) -> str:
    """The part of `SECRET` the URL of `kind` keeps whole in one piece."""
    return SECRET[4:] if kind.startswith("unencoded") else SECRET


DEFECT = "known defect: redaction misses "
LEAKS = {
    "unencoded-at": "the part of a password after an unencoded '@'",
    "unencoded-slash": "a userinfo password holding an unencoded '/'",
    "unencoded-hash": "a userinfo password holding an unencoded '#'",
    "sslpassword": "libpq's sslpassword= parameter",
    "percent-encoded-keyword": "?%70assword=, which libpq decodes to password=",
    "keyword-dsn-escaped-quote": "a quoted password=' ' holding an escaped quote",
}
CLEAN = ["percent-encoded-at", "query-password", "keyword-dsn"]
URL_KINDS = CLEAN + list(LEAKS)


@pytest.mark.parametrize("kind", URL_KINDS)
def test_cli_effects_on_an_unreachable_url_prints_no_password(
    kind: str, tmp_path: Path
) -> None:
    done = cli("effects", _url(kind), "--thread", "t", env={})
    output = done.stdout + done.stderr
    assert done.returncode != 0 and "Traceback" not in output, output
    assert _leak(kind) not in output, output


@pytest.mark.parametrize(
    "kind", ["query-password", "percent-encoded-at", "sslpassword"]
)
def test_saver_connection_error_and_logs_carry_no_password(
    kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    import logging
    import traceback

    from langgraph_rollback.postgres import PostgresRollbackSaver

    caplog.set_level(logging.DEBUG)
    with (
        pytest.raises(psycopg.OperationalError) as info,
        PostgresRollbackSaver.from_conn_string(_url(kind)) as saver,
    ):
        saver.setup()
    text = "".join(traceback.format_exception(info.value)) + caplog.text
    assert _leak(kind) not in text, text
