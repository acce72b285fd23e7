"""The one place that reads the Agent Server's own modules (`langgraph_api`).

`langgraph_api` documents no Python API; what the routes need from it is
here, imported when first used (only inside a running server), and pinned by
`tests/server/test_platform_pins.py`, so an upstream change breaks one place
loudly. Facts used (langgraph-api 0.16):

- `langgraph_api._checkpointer.get_checkpointer()` returns the current event
  loop thread's `_CustomCheckpointerAdapter`, which keeps our saver in
  `_inner` (the server enters the checkpointer once per such thread);
- `langgraph_api.graph.get_graph(graph_id, config, *, checkpointer, store,
  access_context)` builds a graph the way a run builds it (factories get the
  config and the access context), as an async context manager;
- `langgraph_api.store.get_store()` is the server's store;
- `langgraph_api.auth.custom.handle_event(ctx, value)` runs the deployment's
  `@auth.on` handler for `ctx.resource`/`ctx.action`: it returns the
  handler's metadata filter (None: allowed, no filter) or raises an HTTP
  exception when the handler refuses.
"""

from __future__ import annotations

import importlib
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any, Literal

from langgraph_rollback._langgraph import find_saver
from langgraph_rollback.savers.base import BaseRollbackSaver

__all__ = ["authorize", "graph_for", "server_checkpointer", "server_saver"]


def _attr(module: str, name: str) -> Any:
    return getattr(importlib.import_module(module), name)


async def server_checkpointer() -> Any:
    """The checkpointer the server gives its graphs (its adapter around ours)."""
    return await _attr("langgraph_api._checkpointer", "get_checkpointer")()


async def server_saver() -> BaseRollbackSaver:
    """The rollback saver behind the server's checkpointer, on this loop's thread.

    Raises:
        LookupError: The server's checkpointer is not one of ours.
    """
    adapter = await server_checkpointer()
    saver = find_saver(adapter)
    if saver is None:
        raise LookupError(
            f"The Agent Server's checkpointer is {type(adapter).__name__}, not a "
            "rollback saver. Fix: in langgraph.json, set "
            '"checkpointer": {"path": "langgraph_rollback.server.checkpointer"}.'
        )
    return saver


@asynccontextmanager
async def graph_for(
    graph_id: str, config: Mapping[str, Any], *, access_context: str
) -> AsyncIterator[Any]:
    """The graph `graph_id` as the server builds it for `config`, compiled with
    the server's checkpointer and store."""
    get_graph = _attr("langgraph_api.graph", "get_graph")
    store = await _attr("langgraph_api.store", "get_store")()
    async with get_graph(
        graph_id,
        dict(config),
        checkpointer=await server_checkpointer(),
        store=store,
        access_context=access_context,
    ) as graph:
        yield graph


async def authorize(
    user: Any,
    permissions: list[str],
    action: Literal["read", "update"],
    value: Mapping[str, Any],
) -> dict[str, Any] | None:
    """The deployment's `@auth.on.threads` decision for `action` on a thread.

    Returns:
        The metadata filter the thread must match (None: no filter).

    Raises:
        PermissionError: The handler refused.
    """
    from langgraph_sdk.auth.types import AuthContext

    handle_event = _attr("langgraph_api.auth.custom", "handle_event")
    ctx = AuthContext(
        user=user, permissions=permissions, resource="threads", action=action
    )
    try:
        found = await handle_event(ctx, dict(value))
    except Exception as exc:
        if getattr(exc, "status_code", None) is None:
            raise
        raise PermissionError(str(exc)) from exc
    return None if found is None else dict(found)
