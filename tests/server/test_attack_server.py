"""Adversarial probes of langgraph_rollback.server on a real `langgraph dev`.

Two servers serve the module (without auth, and with auth and
`enable_custom_route_auth`); each test uses its own threads and files and
checks the world (the files the tools write, `world/calls.log`, the ledger
file), not only the answers. Known defects are strict xfails.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from langgraph_sdk import get_client
from langgraph_sdk.schema import Command

from langgraph_rollback import SqliteRollbackSaver
from langgraph_rollback.server import ServerConfigError, checkpointer
from tests.support import agent_server
from tests.support.agent_server import AgentServer
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

AGENT = '''
"""Modes: plain (two writes), hold (a write, then the node waits for a
release file), slowtool (the call itself waits for a release file after
writing), slowundo (a write whose inverse waits for a release file), combo
(a write, then an interrupt), nan (a call whose argument is NaN)."""

import asyncio
import json
import operator
import os
import time
from pathlib import Path
from typing import Annotated, TypedDict

from langgraph.graph import END, START, StateGraph
from langgraph.types import interrupt

from langgraph_rollback import Effect, reversible

WORLD = Path(os.environ["WORLD_DIR"])
HOLD_S = 60.0


def _log(entry):
    with open(WORLD / "calls.log", "a") as fh:
        fh.write(json.dumps(entry) + "\\n")


def _read(path):
    return Path(path).read_text() if Path(path).exists() else None


async def observe(path: str, content: str = "", weight: float = 0.0):
    return await asyncio.to_thread(_read, path)


def _unlink(path):
    if Path(path).exists():
        Path(path).unlink()


def delete_file(effect: Effect) -> str:
    _log({"kind": "inverse", "path": effect.args["path"]})
    _unlink(effect.args["path"])
    return f"deleted {Path(effect.args['path']).name}"


def slow_delete(effect: Effect) -> str:
    path = effect.args["path"]
    _log({"kind": "inverse-start", "path": path})
    deadline = time.monotonic() + HOLD_S
    while not Path(path + ".undo-release").exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    _log({"kind": "inverse", "path": path})
    _unlink(path)
    return f"deleted {Path(path).name}"


def _write(path, content):
    Path(path).write_text(content)


async def _wait(release):
    deadline = time.monotonic() + HOLD_S
    while not await asyncio.to_thread(release.exists):
        if time.monotonic() > deadline:
            return
        await asyncio.sleep(0.02)


@reversible(undo=delete_file, observe=observe)
async def write_file(path: str, content: str) -> str:
    await asyncio.to_thread(_log, {"kind": "forward", "path": path})
    await asyncio.to_thread(_write, path, content)
    return path


@reversible(undo=delete_file, observe=observe)
async def write_then_wait(path: str, content: str) -> str:
    await asyncio.to_thread(_log, {"kind": "forward", "path": path})
    await asyncio.to_thread(_write, path, content)
    await _wait(Path(path + ".release"))
    await asyncio.to_thread(_log, {"kind": "forward-end", "path": path})
    return path


@reversible(undo=slow_delete, observe=observe)
async def write_slow_undo(path: str, content: str) -> str:
    await asyncio.to_thread(_log, {"kind": "forward", "path": path})
    await asyncio.to_thread(_write, path, content)
    return path


@reversible(undo=delete_file, observe=observe)
async def weigh(path: str, weight: float) -> str:
    await asyncio.to_thread(_log, {"kind": "forward", "path": path})
    await asyncio.to_thread(_write, path, str(weight))
    return path


class State(TypedDict, total=False):
    name: str
    mode: str
    files: Annotated[list[str], operator.add]
    answer: str


def _file(state, n):
    return str(WORLD / f"{state['name']}-{n}.txt")


async def first(state: State) -> State:
    return {"files": [await write_file(_file(state, 1), "one")]}


async def second(state: State) -> State:
    return {"files": [await write_file(_file(state, 2), "two")]}


async def hold(state: State) -> State:
    path = await write_file(_file(state, 1), "one")
    await _wait(WORLD / f"{state['name']}.release")
    return {"files": [path]}


async def slowtool(state: State) -> State:
    return {"files": [await write_then_wait(_file(state, 1), "one")]}


async def slowundo(state: State) -> State:
    return {"files": [await write_slow_undo(_file(state, 1), "one")]}


async def combo(state: State) -> State:
    path = await write_file(_file(state, 1), "one")
    answer = interrupt({"question": "continue?"})
    return {"files": [path], "answer": answer}


async def nan(state: State) -> State:
    return {"files": [await weigh(_file(state, 1), float("nan"))]}


MODES = ["hold", "slowtool", "slowundo", "combo", "nan"]


def start(state: State) -> str:
    mode = state.get("mode", "")
    return mode if mode in MODES else "first"


builder = StateGraph(State)
for node in (first, second, hold, slowtool, slowundo, combo, nan):
    builder.add_node(node)
builder.add_conditional_edges(START, start, ["first", *MODES])
builder.add_edge("first", "second")
builder.add_edge("second", END)
for mode in MODES:
    builder.add_edge(mode, END)
graph = builder.compile()
'''

TIMEOUT = 60.0


def _serve(root: Path, *, auth: bool) -> AgentServer:
    world = root / "world"
    agent_server.write_project(root, agent_server.langgraph_json(world, auth=auth))
    (root / "agent.py").write_text(AGENT)
    return agent_server.start(root, world)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AgentServer]:
    running = _serve(tmp_path_factory.mktemp("attack-server"), auth=False)
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def auth_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AgentServer]:
    running = _serve(tmp_path_factory.mktemp("attack-server-auth"), auth=True)
    try:
        yield running
    finally:
        running.stop()


@pytest_asyncio.fixture
async def client(server: AgentServer) -> AsyncIterator[Any]:
    async with get_client(url=server.url, timeout=TIMEOUT) as opened:
        yield opened


@pytest_asyncio.fixture
async def http(server: AgentServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        base_url=server.url, timeout=TIMEOUT, trust_env=False
    ) as opened:
        yield opened


def name() -> str:
    return uuid.uuid4().hex[:8]


def files_of(server: AgentServer, n: str) -> set[str]:
    return {f for f in server.files() if f.startswith(f"{n}-")}


async def ran(client: Any, n: str, mode: str = "plain", **kwargs: Any) -> str:
    """A new thread that ran one run of `mode` to its end; its id."""
    tid: str = (await client.threads.create())["thread_id"]
    kwargs.setdefault("durability", "sync")
    await client.runs.wait(tid, "agent", input={"name": n, "mode": mode}, **kwargs)
    return tid


async def effects(http: httpx.AsyncClient, tid: str) -> list[dict[str, Any]]:
    answer = await http.get(f"/threads/{tid}/effects")
    assert answer.status_code == 200, answer.text
    found: list[dict[str, Any]] = answer.json()["effects"]
    return found


def ledger(server: AgentServer, tid: str) -> list[Any]:
    """The thread's effects, read from the ledger file by another process's saver."""
    with SqliteRollbackSaver.from_conn_string(
        str(server.root / "rollback.sqlite")
    ) as saver:
        return saver.list_effects({"configurable": {"thread_id": tid}})


def audit(server: AgentServer, tid: str) -> list[Any]:
    with SqliteRollbackSaver.from_conn_string(
        str(server.root / "rollback.sqlite")
    ) as saver:
        return saver.list_audit({"configurable": {"thread_id": tid}})


def release(server: AgentServer, n: str) -> None:
    (server.world / f"{n}.release").write_text("")
    (server.world / f"{n}-1.txt.release").write_text("")
    (server.world / f"{n}-1.txt.undo-release").write_text("")


def started(server: AgentServer, n: str, kind: str = "forward") -> bool:
    return any(Path(c["path"]).name.startswith(f"{n}-") for c in server.calls(kind))


# --- thread ids ---------------------------------------------------------------------


async def _answers(http: httpx.AsyncClient, tid: str) -> list[tuple[str, int]]:
    found = []
    for method, path, body in (
        ("GET", f"/threads/{tid}/effects", None),
        ("POST", f"/threads/{tid}/rollback/plan", {"to": "first"}),
        ("POST", f"/threads/{tid}/rollback", {"to": "first"}),
        ("POST", f"/threads/{tid}/effects/e/resolve", {"applied": True}),
    ):
        answer = await http.request(method, path, json=body)
        found.append((f"{method} {path}"[:80], answer.status_code))
    return found


@pytest.mark.parametrize("odd", ["..", "%2F"])
async def test_a_thread_id_of_dots_or_slashes_matches_no_route(
    http: httpx.AsyncClient, odd: str
) -> None:
    assert {status for _, status in await _answers(http, odd)} <= {404, 405}


@pytest.mark.parametrize(
    "odd",
    ["not-a-uuid", "ünïcødé", "%E2%9C%93", "%2e%2e", "a%00b", "x" * 300],
)
async def test_a_thread_id_that_is_not_a_uuid_answers_4xx_not_500(
    http: httpx.AsyncClient, odd: str
) -> None:
    assert all(400 <= status < 500 for _, status in await _answers(http, odd))


@pytest.mark.parametrize("trick", ["%3Fx=1", "%23frag", "%3Fthread_id=x"])
async def test_a_query_or_fragment_smuggled_into_the_thread_id_answers_4xx(
    server: AgentServer, client: Any, http: httpx.AsyncClient, trick: str
) -> None:
    n = name()
    tid = await ran(client, n)
    statuses = await _answers(http, f"{tid}{trick}")
    assert files_of(server, n) == {f"{n}-1.txt", f"{n}-2.txt"}
    assert all(400 <= status < 500 for _, status in statuses), statuses


def _spell(tid: str, spell: str) -> str:
    return {
        "upper": tid.upper(),
        "hex": tid.replace("-", ""),
        "braces": "{" + tid + "}",
        "urn": "urn:uuid:" + tid,
    }[spell]


@pytest.mark.parametrize("spell", ["upper", "hex", "braces", "urn"])
async def test_the_effects_route_in_another_spelling_lists_them_or_404s(
    client: Any, http: httpx.AsyncClient, spell: str
) -> None:
    tid = await ran(client, name())
    own = await http.get(f"/threads/{_spell(tid, spell)}")
    answer = await http.get(f"/threads/{_spell(tid, spell)}/effects")
    assert (own.status_code, answer.status_code) in ((200, 200), (404, 404), (422, 422))
    if answer.status_code == 200:
        assert len(answer.json()["effects"]) == 2, answer.text


@pytest.mark.parametrize("spell", ["upper", "hex", "braces", "urn"])
async def test_a_thread_id_in_another_spelling_undoes_or_404s(
    server: AgentServer, client: Any, http: httpx.AsyncClient, spell: str
) -> None:
    n = name()
    tid = await ran(client, n)
    other = _spell(tid, spell)
    answer = await http.post(f"/threads/{other}/rollback", json={"to": "first"})
    if answer.status_code == 200:
        assert answer.json()["undone"], answer.text
        assert files_of(server, n) == set()
    else:
        assert answer.status_code == 404, answer.text
        assert files_of(server, n) == {f"{n}-1.txt", f"{n}-2.txt"}


# --- bad bodies and filters ---------------------------------------------------------


HELD_BODIES: list[Any] = [
    b"{not json",
    b"\xff\xfe",
    b"",
    b"[]",
    b'"first"',
    b"null",
    {"to": "first", "skip": "e1"},
    {"to": "first", "skip": [1]},
    {"to": "first", "on_failure": "maybe"},
    {"to": "first", "on_irreversible": "maybe"},
    {"to": "first", "on_conflict": 1},
    {"to": "run_start:nope"},
    {"to": "before_node:"},
    {"to": "before_node:nope"},
    {"to": "first\x00"},
    {"to": "x" * 10_000},
    {"to": ["first"]},
    {"to": "first", "by": ""},
    {"to": "first", "by": 7},
    {"to": "first", "reason": " "},
]


async def test_bad_rollback_bodies_answer_422_or_404_and_change_nothing(
    server: AgentServer, client: Any, http: httpx.AsyncClient
) -> None:
    n = name()
    tid = await ran(client, n)
    wrong = []
    for body in HELD_BODIES:
        kwargs = {"content": body} if isinstance(body, bytes) else {"json": body}
        for path in (f"/threads/{tid}/rollback", f"/threads/{tid}/rollback/plan"):
            answer = await http.post(path, **kwargs)
            refused = answer.status_code in (404, 422) and "error" in answer.json()
            planned = path.endswith("/plan") and answer.status_code == 200
            if not (refused or planned):
                wrong.append((path, body, answer.status_code, answer.text[:200]))
    assert wrong == []
    assert files_of(server, n) == {f"{n}-1.txt", f"{n}-2.txt"}
    assert {e["status"] for e in await effects(http, tid)} == {"applied"}


async def test_run_start_with_an_empty_run_id_is_refused(
    server: AgentServer, client: Any, http: httpx.AsyncClient
) -> None:
    n = name()
    tid = await ran(client, n)
    answer = await http.post(f"/threads/{tid}/rollback", json={"to": "run_start:"})
    assert answer.status_code == 422, answer.text[:300]
    assert files_of(server, n) == {f"{n}-1.txt", f"{n}-2.txt"}


@pytest.mark.parametrize("value", ["x", -1, True, [1], "NaN", "Infinity"])
async def test_a_bad_inverse_timeout_answers_422_and_undoes_nothing(
    server: AgentServer, client: Any, http: httpx.AsyncClient, value: Any
) -> None:
    n = name()
    tid = await ran(client, n)
    if value in ("NaN", "Infinity"):  # Python's JSON reads these as floats
        body = f'{{"to": "first", "inverse_timeout": {value}}}'.encode()
        answer = await http.post(f"/threads/{tid}/rollback", content=body)
    else:
        body_json = {"to": "first", "inverse_timeout": value}
        answer = await http.post(f"/threads/{tid}/rollback", json=body_json)
    assert answer.status_code == 422, answer.text
    assert files_of(server, n) == {f"{n}-1.txt", f"{n}-2.txt"}


FILTERS_THAT_HOLD: list[dict[str, Any]] = [
    {"status": "bogus"},
    {"status": ""},
    {"limit": "x"},
    {"limit": "1.5"},
    {"before": "x"},
    {"limit": "-1"},
    {"before": "-1"},
    {"limit": "0"},
    {"tool": ""},
    {"tool": "nope"},
    {"checkpoint_id": "nope"},
    {"checkpoint_id": ""},
    {"status": ["applied", "bogus"]},
    {"bogus": "1"},
]


async def test_bad_effect_filters_answer_200_or_422(
    server: AgentServer, client: Any, http: httpx.AsyncClient
) -> None:
    tid = await ran(client, name())
    wrong = []
    for params in FILTERS_THAT_HOLD:
        answer = await http.get(f"/threads/{tid}/effects", params=params)
        if answer.status_code not in (200, 422):
            wrong.append((params, answer.status_code, answer.text[:200]))
    assert wrong == []
    applied = await http.get(
        f"/threads/{tid}/effects", params={"status": "applied", "limit": "1"}
    )
    assert len(applied.json()["effects"]) == 1


@pytest.mark.parametrize("param", ["limit", "before"])
async def test_a_huge_limit_or_before_answers_422(
    server: AgentServer, client: Any, http: httpx.AsyncClient, param: str
) -> None:
    tid = await ran(client, name())
    answer = await http.get(f"/threads/{tid}/effects", params={param: "9" * 30})
    assert answer.status_code in (200, 422), answer.text


async def test_an_effect_with_a_nan_argument_can_be_listed(
    server: AgentServer, client: Any, http: httpx.AsyncClient
) -> None:
    tid = await ran(client, name(), "nan")
    answer = await http.get(f"/threads/{tid}/effects")
    assert answer.status_code == 200, answer.text
    assert [e["tool"] for e in answer.json()["effects"]] == ["weigh"]


# --- resolve --------------------------------------------------------------------------


async def test_resolve_with_wrong_types_or_statuses_changes_nothing(
    server: AgentServer, client: Any, http: httpx.AsyncClient
) -> None:
    n, m = name(), name()
    tid, other = await ran(client, n), await ran(client, m)
    mine = (await effects(http, tid))[0]["id"]
    theirs = (await effects(http, other))[0]["id"]
    cases = [
        (mine, {"applied": "yes"}, 422),
        (mine, {"applied": 1}, 422),
        (mine, {"applied": None}, 422),
        (mine, {}, 422),
        (mine, {"nope": True}, 422),
        (mine, {"applied": True}, 409),
        (mine, {"applied": False}, 409),
        (mine, {"compensated": True}, 409),
        (mine, {"result": "x"}, 409),
        (mine, {"applied": True, "compensated": True}, None),
        ("nope", {"applied": True}, 404),
        ("", {"applied": True}, 404),
        (theirs, {"applied": False}, 404),
    ]
    wrong = []
    for effect_id, body, status in cases:
        answer = await http.post(
            f"/threads/{tid}/effects/{effect_id}/resolve", json=body
        )
        good = 400 <= answer.status_code < 500 and (
            status is None or answer.status_code == status
        )
        if not good:
            wrong.append((effect_id == theirs, body, answer.status_code, answer.text))
    assert wrong == []
    bad_json = await http.post(
        f"/threads/{tid}/effects/{mine}/resolve", content=b"[true]"
    )
    assert bad_json.status_code == 422
    assert {e.status.value for e in ledger(server, tid) + ledger(server, other)} == {
        "applied"
    }
    assert files_of(server, n) | files_of(server, m) == {
        f"{n}-1.txt",
        f"{n}-2.txt",
        f"{m}-1.txt",
        f"{m}-2.txt",
    }
    assert server.calls("inverse") == [] or not any(
        Path(c["path"]).name.startswith((n, m)) for c in server.calls("inverse")
    )


# --- the thread's graph ---------------------------------------------------------------


async def test_a_thread_that_never_ran_answers_404(
    client: Any, http: httpx.AsyncClient
) -> None:
    tid = (await client.threads.create())["thread_id"]
    for path in (f"/threads/{tid}/rollback", f"/threads/{tid}/rollback/plan"):
        answer = await http.post(path, json={"to": "first"})
        assert answer.status_code == 404, answer.text
    assert (await effects(http, tid)) == []


async def test_a_rollback_after_the_runs_assistant_was_deleted_still_undoes(
    server: AgentServer, client: Any, http: httpx.AsyncClient
) -> None:
    n = name()
    assistant = await client.assistants.create(graph_id="agent", name=f"a-{n}")
    tid = (await client.threads.create())["thread_id"]
    await client.runs.wait(
        tid,
        assistant["assistant_id"],
        input={"name": n, "mode": "plain"},
        durability="sync",
    )
    await client.assistants.delete(assistant["assistant_id"])
    answer = await http.post(f"/threads/{tid}/rollback", json={"to": "first"})
    assert answer.status_code == 200, answer.text
    assert files_of(server, n) == set()


# --- runs in progress, concurrent rollbacks ---------------------------------------


async def test_resolve_and_rollback_during_a_run_get_409(
    server: AgentServer, client: Any, http: httpx.AsyncClient
) -> None:
    n = name()
    tid = (await client.threads.create())["thread_id"]
    held = await client.runs.create(
        tid, "agent", input={"name": n, "mode": "hold"}, durability="sync"
    )
    try:
        wait_for(lambda: started(server, n), "the held run's call")
        effect = (await effects(http, tid))[0]
        for path, body in (
            (f"/threads/{tid}/rollback", {"to": "first"}),
            (f"/threads/{tid}/rollback", {"to": "run_start", "skip": []}),
            (f"/threads/{tid}/effects/{effect['id']}/resolve", {"applied": True}),
        ):
            answer = await http.post(path, json=body)
            assert answer.status_code == 409, (path, answer.text)
        assert files_of(server, n) == {f"{n}-1.txt"}
    finally:
        release(server, n)
    await client.runs.join(tid, held["run_id"])
    assert [e.status.value for e in ledger(server, tid)] == ["applied"]


async def test_two_rollbacks_at_once_one_gets_409_and_the_inverse_runs_once(
    server: AgentServer, client: Any, http: httpx.AsyncClient
) -> None:
    n = name()
    tid = await ran(client, n, "slowundo")
    first = asyncio.ensure_future(
        http.post(f"/threads/{tid}/rollback", json={"to": "first"})
    )
    try:
        await asyncio.to_thread(
            wait_for, lambda: started(server, n, "inverse-start"), "the inverse"
        )
        second = await http.post(f"/threads/{tid}/rollback", json={"to": "first"})
        assert second.status_code == 409, second.text
        assert second.json()["error"] == "RollbackInProgressError"
    finally:
        release(server, n)
    report = (await first).json()
    assert report["status"] == "completed", report
    assert files_of(server, n) == set()
    inverses = [c for c in server.calls("inverse") if f"{n}-1" in c["path"]]
    assert len(inverses) == 1


async def test_resolve_during_a_rollbacks_inverse_gets_409(
    server: AgentServer, client: Any, http: httpx.AsyncClient
) -> None:
    n = name()
    tid = await ran(client, n, "slowundo")
    effect_id = (await effects(http, tid))[0]["id"]
    rollback = asyncio.ensure_future(
        http.post(f"/threads/{tid}/rollback", json={"to": "first"})
    )
    try:
        await asyncio.to_thread(
            wait_for, lambda: started(server, n, "inverse-start"), "the inverse"
        )
        answer = await http.post(
            f"/threads/{tid}/effects/{effect_id}/resolve", json={"compensated": False}
        )
    finally:
        release(server, n)
    report = (await rollback).json()
    assert answer.status_code == 409, (answer.text, report["text"])
    assert answer.json()["error"] == "EffectInFlightError", answer.text
    assert report["status"] == "completed", report["text"]
    assert files_of(server, n) == set()
    assert [e.status.value for e in ledger(server, tid)] == ["compensated"]


async def test_a_run_started_during_a_route_rollback_fails_and_writes_nothing(
    server: AgentServer, client: Any, http: httpx.AsyncClient
) -> None:
    n, m = name(), name()
    tid = await ran(client, n, "slowundo")
    rollback = asyncio.ensure_future(
        http.post(f"/threads/{tid}/rollback", json={"to": "first"})
    )
    try:
        await asyncio.to_thread(
            wait_for, lambda: started(server, n, "inverse-start"), "the inverse"
        )
        run = await client.runs.create(
            tid, "agent", input={"name": m, "mode": "plain"}, durability="sync"
        )
        await client.runs.join(tid, run["run_id"])
        failed = await client.runs.get(tid, run["run_id"])
    finally:
        release(server, n)
    report = (await rollback).json()
    assert failed["status"] == "error"
    assert report["status"] == "completed", report["text"]
    assert files_of(server, n) | files_of(server, m) == set()
    assert not started(server, m)


# --- multitask strategies, cancel and delete ---------------------------------------


async def test_multitask_rollback_undoes_only_the_cancelled_run(
    server: AgentServer, client: Any, http: httpx.AsyncClient
) -> None:
    before, held, after = name(), name(), name()
    tid = await ran(client, before)
    await client.runs.create(
        tid, "agent", input={"name": held, "mode": "hold"}, durability="sync"
    )
    try:
        await asyncio.to_thread(wait_for, lambda: started(server, held), "the call")
        run3 = await client.runs.create(
            tid,
            "agent",
            input={"name": after, "mode": "plain"},
            multitask_strategy="rollback",
            durability="sync",
        )
        await client.runs.join(tid, run3["run_id"])
    finally:
        release(server, held)
    assert files_of(server, held) == set()
    assert files_of(server, before) == {f"{before}-1.txt", f"{before}-2.txt"}
    assert files_of(server, after) == {f"{after}-1.txt", f"{after}-2.txt"}
    statuses = {Path(e.args["path"]).name: e.status.value for e in ledger(server, tid)}
    assert statuses == {
        f"{before}-1.txt": "applied",
        f"{before}-2.txt": "applied",
        f"{held}-1.txt": "compensated",
        f"{after}-1.txt": "applied",
        f"{after}-2.txt": "applied",
    }


@pytest.mark.parametrize("durability", [None, "exit"])
async def test_multitask_rollback_undoes_a_run_of_any_durability(
    server: AgentServer, client: Any, durability: str | None
) -> None:
    held, after = name(), name()
    tid = (await client.threads.create())["thread_id"]
    extra = {} if durability is None else {"durability": durability}
    await client.runs.create(
        tid, "agent", input={"name": held, "mode": "hold"}, **extra
    )
    try:
        await asyncio.to_thread(wait_for, lambda: started(server, held), "the call")
        run2 = await client.runs.create(
            tid,
            "agent",
            input={"name": after, "mode": "plain"},
            multitask_strategy="rollback",
            **extra,
        )
        await client.runs.join(tid, run2["run_id"])
    finally:
        release(server, held)
    assert files_of(server, held) == set()
    assert files_of(server, after) == {f"{after}-1.txt", f"{after}-2.txt"}
    held_effects = [e for e in ledger(server, tid) if held in e.args["path"]]
    assert [e.status.value for e in held_effects] == ["compensated"]


async def test_multitask_rollback_of_a_call_still_in_flight_undoes_it_promptly(
    server: AgentServer, client: Any, http: httpx.AsyncClient
) -> None:
    held, after = name(), name()
    tid = (await client.threads.create())["thread_id"]
    await client.runs.create(
        tid, "agent", input={"name": held, "mode": "slowtool"}, durability="sync"
    )
    try:
        await asyncio.to_thread(
            wait_for,
            lambda: (server.world / f"{held}-1.txt").exists(),
            "the call's write",
        )
        run2 = await client.runs.create(
            tid,
            "agent",
            input={"name": after, "mode": "plain"},
            multitask_strategy="rollback",
            durability="sync",
        )
        await client.runs.join(tid, run2["run_id"])
        # Promptly: done while the call was still held (released only below,
        # it ends by itself only after HOLD_S), not once the call had ended.
        assert not started(server, held, "forward-end")
    finally:
        release(server, held)
    await asyncio.to_thread(
        wait_for, lambda: not (server.world / f"{held}-1.txt").exists(), "the undo"
    )
    assert files_of(server, after) == {f"{after}-1.txt", f"{after}-2.txt"}
    held_effects = [e for e in ledger(server, tid) if held in e.args["path"]]
    assert [e.status.value for e in held_effects] == ["compensated"]


async def test_multitask_interrupt_keeps_the_run_and_a_later_rollback_undoes_it(
    server: AgentServer, client: Any, http: httpx.AsyncClient
) -> None:
    held, after = name(), name()
    tid = (await client.threads.create())["thread_id"]
    await client.runs.create(
        tid, "agent", input={"name": held, "mode": "hold"}, durability="sync"
    )
    try:
        await asyncio.to_thread(wait_for, lambda: started(server, held), "the call")
        run2 = await client.runs.create(
            tid,
            "agent",
            input={"name": after, "mode": "plain"},
            multitask_strategy="interrupt",
            durability="sync",
        )
        await client.runs.join(tid, run2["run_id"])
    finally:
        release(server, held)
    assert files_of(server, held) == {f"{held}-1.txt"}
    report = (await http.post(f"/threads/{tid}/rollback", json={"to": "first"})).json()
    assert report["ok"], report["text"]
    assert files_of(server, held) | files_of(server, after) == set()


async def test_cancel_with_rollback_undoes_and_cancel_with_interrupt_keeps(
    server: AgentServer, client: Any, http: httpx.AsyncClient
) -> None:
    gone, kept = name(), name()
    for n, action in ((gone, "rollback"), (kept, "interrupt")):
        tid = (await client.threads.create())["thread_id"]
        run = await client.runs.create(
            tid, "agent", input={"name": n, "mode": "hold"}, durability="sync"
        )
        try:
            await asyncio.to_thread(wait_for, lambda n=n: started(server, n), "call")
            await client.runs.cancel(tid, run["run_id"], wait=True, action=action)
        finally:
            release(server, n)
        if action == "rollback":
            await asyncio.to_thread(
                wait_for, lambda n=n: files_of(server, n) == set(), "the undo"
            )
            assert [e.status.value for e in ledger(server, tid)] == ["compensated"]
        else:
            assert files_of(server, n) == {f"{n}-1.txt"}
            assert [e.status.value for e in ledger(server, tid)] == ["applied"]
            answer = await http.post(f"/threads/{tid}/rollback", json={"to": "first"})
            assert answer.json()["ok"], answer.text
            assert files_of(server, n) == set()


async def test_deleting_a_finished_run_undoes_that_run_only(
    server: AgentServer, client: Any, http: httpx.AsyncClient
) -> None:
    one, two = name(), name()
    tid = await ran(client, one)
    run2 = await client.runs.wait(
        tid, "agent", input={"name": two, "mode": "plain"}, durability="sync"
    )
    del run2
    runs = await client.runs.list(tid)
    first_run = runs[-1]["run_id"]
    await client.runs.delete(tid, first_run)
    await asyncio.to_thread(
        wait_for, lambda: files_of(server, one) == set(), "the deleted run's undo"
    )
    assert files_of(server, two) == {f"{two}-1.txt", f"{two}-2.txt"}
    statuses = {Path(e.args["path"]).name: e.status.value for e in ledger(server, tid)}
    assert statuses[f"{two}-1.txt"] == statuses[f"{two}-2.txt"] == "applied"


async def test_deleting_a_thread_keeps_its_world_and_ledger_and_a_recreated_thread_undoes_only_its_own(
    server: AgentServer, client: Any, http: httpx.AsyncClient
) -> None:
    old, new = name(), name()
    tid = await ran(client, old)
    await client.threads.delete(tid)
    assert files_of(server, old) == {f"{old}-1.txt", f"{old}-2.txt"}
    assert {e.status.value for e in ledger(server, tid)} == {"applied"}
    gone = await http.get(f"/threads/{tid}/effects")
    assert gone.status_code == 404, gone.text

    await client.threads.create(thread_id=tid)
    await client.runs.wait(
        tid, "agent", input={"name": new, "mode": "plain"}, durability="sync"
    )
    report = (await http.post(f"/threads/{tid}/rollback", json={"to": "first"})).json()
    assert files_of(server, new) == set(), report["text"]
    assert files_of(server, old) == {f"{old}-1.txt", f"{old}-2.txt"}, report["text"]


# --- interrupt and resume ---------------------------------------------------------


async def test_a_resume_under_the_default_durability_does_not_repeat_the_call(
    server: AgentServer, client: Any
) -> None:
    n = name()
    tid = (await client.threads.create())["thread_id"]
    await client.runs.wait(tid, "agent", input={"name": n, "mode": "combo"})
    await client.runs.wait(tid, "agent", command=Command(resume="yes"))
    state = await client.threads.get_state(tid)
    assert state["values"]["answer"] == "yes"
    path = str(server.world / f"{n}-1.txt")
    assert [c for c in server.calls("forward") if c["path"] == path] == [
        {"kind": "forward", "path": path}
    ]


async def test_two_resumes_queued_one_after_the_other_call_once(
    server: AgentServer, client: Any
) -> None:
    n = name()
    tid = (await client.threads.create())["thread_id"]
    await client.runs.wait(
        tid, "agent", input={"name": n, "mode": "combo"}, durability="sync"
    )
    a = await client.runs.create(
        tid, "agent", command=Command(resume="a"), durability="sync"
    )
    b = await client.runs.create(
        tid,
        "agent",
        command=Command(resume="b"),
        multitask_strategy="enqueue",
        durability="sync",
    )
    await client.runs.join(tid, a["run_id"])
    await client.runs.join(tid, b["run_id"])
    path = str(server.world / f"{n}-1.txt")
    assert len([c for c in server.calls("forward") if c["path"] == path]) == 1


# --- auth ---------------------------------------------------------------------------


@pytest_asyncio.fixture
async def users(auth_server: AgentServer) -> AsyncIterator[dict[str, Any]]:
    def raw(headers: dict[str, str]) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=auth_server.url, timeout=TIMEOUT, trust_env=False, headers=headers
        )

    async with (
        get_client(
            url=auth_server.url,
            timeout=TIMEOUT,
            headers={"Authorization": "Bearer alice"},
        ) as alice,
        raw({"Authorization": "Bearer alice"}) as alice_http,
        raw({"Authorization": "Bearer bob"}) as bob,
        raw({}) as nobody,
    ):
        yield {"alice": alice, "alice_http": alice_http, "bob": bob, "nobody": nobody}


async def test_bob_cannot_reach_alices_thread_by_any_route_or_spelling(
    auth_server: AgentServer, users: dict[str, Any]
) -> None:
    n, m = name(), name()
    alice, bob = users["alice"], users["bob"]
    tid = await ran(alice, n)
    effect_id = (await effects(users["alice_http"], tid))[0]["id"]
    bobs = (await bob.post("/threads", json={})).json()["thread_id"]
    await bob.post(
        f"/threads/{bobs}/runs/wait",
        json={
            "assistant_id": "agent",
            "input": {"name": m, "mode": "plain"},
            "durability": "sync",
        },
    )
    own = await bob.get(f"/threads/{tid}")
    assert own.status_code == 404, own.text  # the server's own endpoint
    spellings = [tid, tid.upper(), tid.replace("-", "")]
    wrong: list[Any] = []
    for spelling in spellings:
        for method, path, body in (
            ("GET", f"/threads/{spelling}/effects", None),
            ("POST", f"/threads/{spelling}/rollback/plan", {"to": "first"}),
            ("POST", f"/threads/{spelling}/rollback", {"to": "first"}),
            (
                "POST",
                f"/threads/{spelling}/effects/{effect_id}/resolve",
                {"applied": True},
            ),
        ):
            answer = await bob.request(method, path, json=body)
            if answer.status_code != 404:
                wrong.append((method, path, answer.status_code, answer.text[:200]))
    cross = await bob.post(
        f"/threads/{bobs}/effects/{effect_id}/resolve", json={"applied": False}
    )
    if cross.status_code != 404:
        wrong.append(("cross", cross.status_code, cross.text[:200]))
    for headers in ({}, {"x-auth-scheme": "langsmith"}, {"Authorization": "Bearer"}):
        anon = await users["nobody"].post(
            f"/threads/{tid}/rollback", json={"to": "first"}, headers=headers
        )
        if anon.status_code not in (401, 403, 404):
            wrong.append((headers, anon.status_code, anon.text[:200]))
    assert wrong == []
    assert files_of(auth_server, n) == {f"{n}-1.txt", f"{n}-2.txt"}
    assert {e.status.value for e in ledger(auth_server, tid)} == {"applied"}


async def test_a_skip_over_http_is_audited_as_the_authenticated_user(
    auth_server: AgentServer, users: dict[str, Any]
) -> None:
    n = name()
    tid = await ran(users["alice"], n)
    newest = (await effects(users["alice_http"], tid))[0]["id"]
    answer = await users["alice_http"].post(
        f"/threads/{tid}/rollback", json={"to": "first", "skip": [newest]}
    )
    assert answer.status_code == 200, answer.text
    assert files_of(auth_server, n) == {f"{n}-2.txt"}
    entries = audit(auth_server, tid)
    assert sorted((e.action.value, e.by) for e in entries) == [
        ("rollback", "alice"),
        ("skip", "alice"),
    ]


async def test_a_by_naming_another_user_under_auth_is_refused_and_undoes_nothing(
    auth_server: AgentServer, users: dict[str, Any]
) -> None:
    n = name()
    tid = await ran(users["alice"], n)
    newest = (await effects(users["alice_http"], tid))[0]["id"]
    for path, body in (
        (f"/threads/{tid}/rollback", {"to": "first", "skip": [newest], "by": "bob"}),
        (f"/threads/{tid}/effects/{newest}/resolve", {"result": "x", "by": "bob"}),
    ):
        answer = await users["alice_http"].post(path, json=body)
        assert answer.status_code == 422, answer.text
        assert "authenticated user" in answer.json()["detail"]
    assert files_of(auth_server, n) == {f"{n}-1.txt", f"{n}-2.txt"}
    assert audit(auth_server, tid) == []


async def test_a_skip_over_open_routes_is_audited_with_the_bodys_by_and_reason(
    server: AgentServer, client: Any, http: httpx.AsyncClient
) -> None:
    n = name()
    tid = await ran(client, n)
    newest = (await effects(http, tid))[0]["id"]
    body = {"to": "first", "skip": [newest], "by": "ops", "reason": "kept on purpose"}
    answer = await http.post(f"/threads/{tid}/rollback", json=body)
    assert answer.status_code == 200, answer.text
    assert files_of(server, n) == {f"{n}-2.txt"}
    entries = audit(server, tid)
    assert sorted((e.action.value, e.by, e.reason) for e in entries) == [
        ("rollback", "ops", "kept on purpose"),
        ("skip", "ops", "kept on purpose"),
    ]


# --- the saver's database ----------------------------------------------------------


async def _opening_fails() -> BaseException:
    try:
        async with asyncio.timeout(30), checkpointer():
            pass
    except Exception as exc:  # what it raises is the probe
        return exc
    raise AssertionError("the checkpointer opened")


async def test_a_directory_as_the_uri_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("LANGGRAPH_ROLLBACK_URI", str(tmp_path))
    before = set(threading.enumerate())
    error = await _opening_fails()
    for thread in set(threading.enumerate()) - before:  # aiosqlite's worker
        if not thread.name.startswith("asyncio_"):  # not the loop's executor
            await asyncio.to_thread(thread.join, 10)
    assert isinstance(error, ServerConfigError), repr(error)
    assert "Fix:" in str(error)


async def test_a_postgres_url_that_is_down_fails_promptly(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LANGGRAPH_ROLLBACK_URI", "postgresql://u:secret@127.0.0.1:1/db")
    began = time.monotonic()
    error = await _opening_fails()
    assert time.monotonic() - began < 15
    assert "secret" not in str(error)


@pytest.mark.parametrize(
    "value",
    [
        "False",
        "OFF",
        " false",
    ],
)
async def test_undo_deleted_runs_off_in_any_case_or_spacing(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, value: str
) -> None:
    monkeypatch.setenv("LANGGRAPH_ROLLBACK_URI", str(tmp_path / "r.sqlite"))
    monkeypatch.setenv("LANGGRAPH_ROLLBACK_UNDO_DELETED_RUNS", value)
    async with checkpointer() as saver:
        assert not saver.undo_deleted_runs


def test_a_server_without_the_uri_exits_naming_it(tmp_path: Path) -> None:
    world = tmp_path / "world"
    config = agent_server.langgraph_json(world)
    del config["env"]["LANGGRAPH_ROLLBACK_URI"]
    agent_server.write_project(tmp_path, config)
    with pytest.raises(AssertionError, match="LANGGRAPH_ROLLBACK_URI is not set"):
        agent_server.start(tmp_path, world)
