"""With auth configured, the routes apply the thread's own authorization."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from langgraph_sdk import get_client

from tests.support import agent_server
from tests.support.agent_server import AgentServer

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AgentServer]:
    root = tmp_path_factory.mktemp("agent-server-auth")
    world = root / "world"
    agent_server.write_project(root, agent_server.langgraph_json(world, auth=True))
    running = agent_server.start(root, world)
    try:
        yield running
    finally:
        running.stop()


async def test_another_user_gets_404_and_nothing_changes(server: AgentServer) -> None:
    async with (
        get_client(url=server.url, headers={"Authorization": "Bearer alice"}) as alice,
        get_client(url=server.url, headers={"Authorization": "Bearer bob"}) as bob,
        get_client(url=server.url) as nobody,
    ):
        tid = (await alice.threads.create())["thread_id"]
        await alice.runs.wait(
            tid, "agent", input={"name": "alice", "mode": "plain"}, durability="sync"
        )
        head = (await alice.threads.get_state(tid))["checkpoint"]["checkpoint_id"]
        for path, method in (
            (f"/threads/{tid}/rollback", "post"),
            (f"/threads/{tid}/rollback/plan", "post"),
            (f"/threads/{tid}/effects", "get"),
        ):
            kwargs = {"json": {"to": "first"}} if method == "post" else {}
            answer = await getattr(bob.http.client, method)(path, **kwargs)
            assert answer.status_code == 404, (path, answer.text)
            anonymous = await getattr(nobody.http.client, method)(path, **kwargs)
            assert anonymous.status_code == 401, (path, anonymous.text)
        assert {"alice-1.txt", "alice-2.txt"} <= set(server.files())
        state = await alice.threads.get_state(tid)
        assert state["checkpoint"]["checkpoint_id"] == head

        mine = await alice.http.post(f"/threads/{tid}/rollback", json={"to": "first"})
        assert mine["status"] == "completed", mine["text"]
        assert not {"alice-1.txt", "alice-2.txt"} & set(server.files())


def test_auth_without_custom_route_auth_refuses_to_start(tmp_path: Path) -> None:
    world = tmp_path / "world"
    config = agent_server.langgraph_json(world, auth=True, route_auth=False)
    agent_server.write_project(tmp_path, config)
    with pytest.raises(AssertionError, match="enable_custom_route_auth"):
        agent_server.start(tmp_path, world)
