"""langgraph_rollback.server on a real `langgraph dev`, driven by langgraph_sdk.

One server serves the whole module; each test uses its own threads and files.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from langgraph_sdk import get_client
from langgraph_sdk.schema import Command

from tests.support import agent_server
from tests.support.agent_server import AgentServer
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AgentServer]:
    root = tmp_path_factory.mktemp("agent-server")
    world = root / "world"
    agent_server.write_project(root, agent_server.langgraph_json(world))
    running = agent_server.start(root, world)
    try:
        yield running
    finally:
        running.stop()


@pytest_asyncio.fixture
async def client(server: AgentServer) -> AsyncIterator[Any]:
    async with get_client(url=server.url) as opened:
        yield opened


def name() -> str:
    return uuid.uuid4().hex[:8]


async def run(client: Any, thread_id: str, **input: Any) -> dict[str, Any]:
    result: dict[str, Any] = await client.runs.wait(
        thread_id, "agent", input=input, durability="sync"
    )
    return result


async def test_effects_are_recorded_with_the_servers_thread_and_run_ids(
    server: AgentServer, client: Any
) -> None:
    thread = await client.threads.create()
    tid, n = thread["thread_id"], name()
    await run(client, tid, name=n, mode="plain")
    assert server.files() == sorted([f"{n}-1.txt", f"{n}-2.txt"]) or {
        f"{n}-1.txt",
        f"{n}-2.txt",
    } <= set(server.files())
    (latest,) = await client.runs.list(tid, limit=1)
    body = await client.http.get(f"/threads/{tid}/effects")
    effects = body["effects"]
    assert [(e["tool"], e["status"]) for e in effects] == [
        ("write_file", "applied"),
        ("write_file", "applied"),
    ]
    assert {e["thread_id"] for e in effects} == {tid}
    assert {e["run_id"] for e in effects} == {latest["run_id"]}
    assert [e["args"]["path"] for e in effects] == [
        str(server.world / f"{n}-2.txt"),
        str(server.world / f"{n}-1.txt"),
    ]
    one = await client.http.get(f"/threads/{tid}/effects", params={"limit": 1})
    assert [e["id"] for e in one["effects"]] == [effects[0]["id"]]


async def test_interrupt_then_resume_does_not_repeat_the_call(
    server: AgentServer, client: Any
) -> None:
    tid, n = (await client.threads.create())["thread_id"], name()
    await run(client, tid, name=n, mode="combo")
    state = await client.threads.get_state(tid)
    assert state["next"] == ["combo"]
    await client.runs.wait(
        tid, "agent", command=Command(resume="yes"), durability="sync"
    )
    state = await client.threads.get_state(tid)
    assert state["values"]["answer"] == "yes"
    path = str(server.world / f"{n}-1.txt")
    assert [c for c in server.calls("forward") if c["path"] == path] == [
        {"kind": "forward", "path": path}
    ]


async def test_the_rollback_route_undoes_files_and_restores_the_head(
    server: AgentServer, client: Any
) -> None:
    tid, n = (await client.threads.create())["thread_id"], name()
    await run(client, tid, name=n, mode="plain")
    plan = await client.http.post(f"/threads/{tid}/rollback/plan", json={"to": "first"})
    assert [s["decision"] for s in plan["steps"]] == ["undo", "undo"]
    report = await client.http.post(f"/threads/{tid}/rollback", json={"to": "first"})
    (server.root / f"rollback-{n}.json").write_text(json.dumps(report, indent=2))
    assert (report["status"], report["ok"]) == ("completed", True), report["text"]
    assert [u["description"] for u in report["undone"]] == [
        f"deleted {n}-2.txt (undo of write_file)",
        f"deleted {n}-1.txt (undo of write_file)",
    ]
    assert not {f"{n}-1.txt", f"{n}-2.txt"} & set(server.files())
    state = await client.threads.get_state(tid)
    assert state["checkpoint"]["checkpoint_id"] == report["restored_checkpoint_id"]
    assert state["values"].get("files", []) == []

    again = await client.http.post(f"/threads/{tid}/rollback", json={"to": "first"})
    assert (again["status"], again["ok"], again["undone"]) == (
        "nothing_to_undo",
        True,
        [],
    )
    effects = (await client.http.get(f"/threads/{tid}/effects"))["effects"]
    assert {e["status"] for e in effects} == {"compensated"}


async def test_bad_input_unknown_threads_and_checkpoints(
    server: AgentServer, client: Any
) -> None:
    tid, n = (await client.threads.create())["thread_id"], name()
    await run(client, tid, name=n, mode="plain")
    http = client.http.client
    missing = await http.post(f"/threads/{uuid.uuid4()}/rollback", json={"to": "first"})
    assert missing.status_code == 404, missing.text
    unknown = await http.post(
        f"/threads/{tid}/rollback", json={"to": str(uuid.uuid4())}
    )
    assert unknown.status_code == 404, unknown.text
    assert "--to" not in unknown.json()["detail"]
    for body in ({}, {"to": 3}, {"to": "first", "on_conflict": "maybe"}, {"x": 1}):
        bad = await http.post(f"/threads/{tid}/rollback", json=body)
        assert bad.status_code == 422, (body, bad.text)
    bad_filter = await http.get(f"/threads/{tid}/effects", params={"limit": "x"})
    assert bad_filter.status_code == 422
    assert {f"{n}-1.txt", f"{n}-2.txt"} <= set(server.files())


async def test_a_rollback_during_a_run_gets_409(
    server: AgentServer, client: Any
) -> None:
    tid, n = (await client.threads.create())["thread_id"], name()
    held = await client.runs.create(
        tid, "agent", input={"name": n, "mode": "hold"}, durability="sync"
    )
    path = str(server.world / f"{n}-1.txt")
    wait_for(lambda: (server.world / f"{n}-1.txt").exists(), "the held run's call")
    try:
        busy = await client.http.client.post(
            f"/threads/{tid}/rollback", json={"to": "first"}
        )
        assert busy.status_code == 409, busy.text
        assert (server.world / f"{n}-1.txt").exists()
    finally:
        (server.world / f"{n}.release").write_text("")
    await client.runs.join(tid, held["run_id"])
    assert [c["path"] for c in server.calls() if c["path"] == path] == [path]


async def test_multitask_rollback_undoes_the_cancelled_run(
    server: AgentServer, client: Any
) -> None:
    tid = (await client.threads.create())["thread_id"]
    first, second = name(), name()
    await client.runs.create(
        tid, "agent", input={"name": first, "mode": "hold"}, durability="sync"
    )
    wait_for(lambda: (server.world / f"{first}-1.txt").exists(), "the first run's call")
    run2 = await client.runs.create(
        tid,
        "agent",
        input={"name": second, "mode": "plain"},
        multitask_strategy="rollback",
        durability="sync",
    )
    await client.runs.join(tid, run2["run_id"])
    files = set(server.files())
    assert f"{first}-1.txt" not in files
    assert {f"{second}-1.txt", f"{second}-2.txt"} <= files
    effects = (await client.http.get(f"/threads/{tid}/effects"))["effects"]
    by_run = {(e["run_id"], e["status"]) for e in effects}
    assert (run2["run_id"], "applied") in by_run
    cancelled = [e for e in effects if e["run_id"] != run2["run_id"]]
    assert [(e["args"]["path"], e["status"]) for e in cancelled] == [
        (str(server.world / f"{first}-1.txt"), "compensated")
    ]
    assert cancelled[0]["rollback_id"] is not None
    inverse = [c for c in server.calls("inverse") if first in Path(c["path"]).name]
    assert len(inverse) == 1
