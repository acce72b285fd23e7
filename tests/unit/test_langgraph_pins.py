"""Pins the LangGraph internals `_langgraph` reads, so an upstream change fails here."""

from __future__ import annotations

import operator
import weakref
from typing import Annotated, Any, TypedDict

from langgraph.graph import END, START, StateGraph
from langgraph.types import RetryPolicy

from langgraph_rollback import InMemoryRollbackSaver
from langgraph_rollback._langgraph import current_task


class S(TypedDict, total=False):
    seen: Annotated[list[Any], operator.add]


def test_private_keys_and_execution_info() -> None:
    saver = InMemoryRollbackSaver()
    seen: list[Any] = []

    def node(state: S) -> S:
        from langgraph.config import get_config

        conf = get_config()["configurable"]
        # The only way a tool reaches the checkpointer (langgraph pregel/_algo.py).
        assert "__pregel_checkpointer" in conf
        assert isinstance(conf["__pregel_checkpointer"], InMemoryRollbackSaver)
        # One weak-referenceable object per task preparation.
        weakref.ref(conf["__pregel_read"])
        assert conf["checkpoint_id"] is None
        ctx = current_task()
        assert ctx is not None
        seen.append(ctx)
        if ctx.attempt == 1:
            raise ConnectionError("retry me")
        return {"seen": [ctx.task_id]}

    builder = StateGraph(S)
    builder.add_node(
        node, retry_policy=RetryPolicy(initial_interval=0.001, jitter=False)
    )
    builder.add_edge(START, "node")
    builder.add_edge("node", END)
    graph = builder.compile(checkpointer=saver)
    config = {"configurable": {"thread_id": "ctx"}}
    graph.invoke({"seen": []}, config, durability="sync")

    first, second = seen
    assert first.thread_id == "ctx"
    assert first.task_ns == f"node:{first.task_id}"
    assert first.checkpoint_ns == ""
    assert first.root_checkpoint_id == first.checkpoint_id
    # A retry keeps the task (id, namespace, preparation) and bumps the attempt.
    assert (second.task_id, second.task_ns, second.scope) == (
        first.task_id,
        first.task_ns,
        first.scope,
    )
    assert (first.attempt, second.attempt) == (1, 2)
    assert second.store is saver or isinstance(second.store, InMemoryRollbackSaver)


def test_no_task_outside_a_graph_or_without_our_saver() -> None:
    from langgraph.checkpoint.memory import InMemorySaver

    assert current_task() is None
    found: list[Any] = []

    def node(state: S) -> S:
        found.append(current_task())
        return {}

    builder = StateGraph(S)
    builder.add_node(node)
    builder.add_edge(START, "node")
    builder.add_edge("node", END)
    builder.compile().invoke({"seen": []})
    builder.compile(checkpointer=InMemorySaver()).invoke(
        {"seen": []}, {"configurable": {"thread_id": "x"}}
    )
    assert found == [None, None]
