"""Adversarial checks of the PostgreSQL savers: a write the database refuses."""

from __future__ import annotations

import asyncio
from typing import Any

import psycopg
import pytest
from langchain_core.messages import AIMessage
from langchain_core.tools import tool
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode

from langgraph_rollback import ToolRegistry, reversible
from tests.support.world import World

FAIL_NEXT_WRITES = """
CREATE SEQUENCE IF NOT EXISTS fail_arm;
CREATE OR REPLACE FUNCTION fail_armed() RETURNS trigger AS $$
BEGIN
    IF (SELECT last_value FROM fail_arm) = 7 THEN
        PERFORM setval('fail_arm', 1);
        RAISE EXCEPTION 'the disk is full (armed by the test)';
    END IF;
    RETURN NEW;
END $$ LANGUAGE plpgsql;
CREATE TRIGGER fail_armed BEFORE INSERT ON checkpoint_writes
    FOR EACH ROW EXECUTE FUNCTION fail_armed();
"""


def graph_arming_a_failure(pg_url: str, world: World) -> Any:
    """model asks for one call; the tool acts, then arms the database to
    refuse the next insert into checkpoint_writes (the task's own writes)."""
    registry = ToolRegistry()

    @reversible(undo=lambda effect: None, registry=registry)
    @tool
    def act(name: str) -> str:
        """Act once, then make the next checkpoint write fail."""
        world.log("forward", "act", name=name)
        with psycopg.connect(pg_url, autocommit=True) as other:
            other.execute("SELECT setval('fail_arm', 7)")
        return name

    def model(state: MessagesState) -> dict[str, Any]:
        if state["messages"]:
            return {}
        call = {"name": "act", "args": {"name": "a"}, "id": "c1"}
        return {"messages": [AIMessage("", tool_calls=[call])]}

    builder = StateGraph(MessagesState)
    builder.add_node("model", model)
    builder.add_node("tools", ToolNode([act]))
    builder.add_edge(START, "model")
    builder.add_edge("model", "tools")
    builder.add_edge("tools", END)
    return builder, registry


@pytest.mark.parametrize("pipeline", [False, True], ids=["connection", "pipeline"])
@pytest.mark.parametrize("flavour", ["sync", "async"])
def test_a_refused_task_write_keeps_the_outcome_and_the_connection_usable(
    pg_url: str, world: World, pipeline: bool, flavour: str
) -> None:
    from langgraph_rollback.postgres import (
        AsyncPostgresRollbackSaver,
        PostgresRollbackSaver,
    )

    builder, registry = graph_arming_a_failure(pg_url, world)
    config: Any = {"configurable": {"thread_id": "t"}}
    with PostgresRollbackSaver.from_conn_string(pg_url) as plain:
        plain.setup()
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(FAIL_NEXT_WRITES)

    def sync_run() -> list[str]:
        with PostgresRollbackSaver.from_conn_string(
            pg_url, pipeline=pipeline, registry=registry
        ) as saver:
            graph = builder.compile(checkpointer=saver)
            with pytest.raises(psycopg.Error, match="disk is full"):
                graph.invoke({"messages": []}, config, durability="sync")
            statuses = [e.status.value for e in saver.list_effects(config)]
            graph.invoke(None, config, durability="sync")
            return statuses + [e.status.value for e in saver.list_effects(config)]

    async def async_run() -> list[str]:
        async with AsyncPostgresRollbackSaver.from_conn_string(
            pg_url, pipeline=pipeline, registry=registry
        ) as saver:
            graph = builder.compile(checkpointer=saver)
            with pytest.raises(psycopg.Error, match="disk is full"):
                await graph.ainvoke({"messages": []}, config, durability="sync")
            statuses = [e.status.value for e in await saver.alist_effects(config)]
            await graph.ainvoke(None, config, durability="sync")
            after = await saver.alist_effects(config)
            return statuses + [e.status.value for e in after]

    statuses = sync_run() if flavour == "sync" else asyncio.run(async_run())
    assert statuses == ["applied", "applied"]
    assert world.count("forward", "act") == 1


async def test_a_cancelled_scope_arollback_on_a_pool_releases_the_thread(
    pg_url: str, world: World
) -> None:
    """Under anyio a cancelled scope cancels the lock release's awaits too; the
    thread must not stay refused ('being rolled back by this process')."""
    import anyio
    from langgraph.graph import END, START, StateGraph
    from psycopg.rows import dict_row
    from psycopg_pool import AsyncConnectionPool

    from langgraph_rollback import Effect, RollbackInProgressError, arollback
    from langgraph_rollback.postgres import AsyncPostgresRollbackSaver
    from tests.support.crash_graph import State

    registry = ToolRegistry()
    started = asyncio.Event()

    async def undo(effect: Effect) -> None:
        world.log("inverse", "touch")
        started.set()
        await asyncio.Event().wait()

    @reversible(undo=undo, registry=registry)
    async def touch(name: str) -> str:
        world.log("forward", "touch")
        return name

    async def act(state: Any) -> dict[str, Any]:
        return {"done": [await touch("a")]}

    builder = StateGraph(State)
    builder.add_node("act", act)
    builder.add_edge(START, "act")
    builder.add_edge("act", END)
    kwargs = {"autocommit": True, "prepare_threshold": 0, "row_factory": dict_row}
    config: Any = {"configurable": {"thread_id": "t"}}
    async with AsyncConnectionPool(
        pg_url, min_size=1, max_size=3, kwargs=kwargs, open=False
    ) as pool:
        saver = AsyncPostgresRollbackSaver(pool, registry=registry)
        await saver.setup()
        graph = builder.compile(checkpointer=saver)
        await graph.ainvoke({"done": []}, config, durability="sync")
        with anyio.CancelScope() as scope:

            async def cancel_when_started() -> None:
                await started.wait()
                scope.cancel()

            watcher = asyncio.ensure_future(cancel_when_started())
            await arollback(graph, config, to="first")
        await watcher
        assert world.count("inverse") == 1
        try:
            await arollback(graph, config, to="first")
        except RollbackInProgressError as exc:
            pytest.fail(f"the cancelled rollback kept the thread: {exc}")
