"""Record every tool call of a `ToolNode`, declared or not: the one-line hook.

```python
from langgraph.prebuilt import ToolNode
from langgraph_rollback import arecord_tool_call, record_tool_call

tools = ToolNode(my_tools, wrap_tool_call=record_tool_call, awrap_tool_call=arecord_tool_call)
```

A tool declared with `@reversible`/`@irreversible` records itself, so the hook
lets it through. Any other tool is recorded as an effect of unknown
reversibility, so the ledger (and a rollback's report) shows the whole blast
radius, and the guard policy treats it like an irreversible tool. Tools from
MCP servers (through `langchain-mcp-adapters`) carry MCP annotations in
`tool.metadata`: `readOnlyHint=True` means no side effect (not recorded), and
`destructiveHint=True` means irreversible.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from langchain_core.tools import BaseTool

from langgraph_rollback._current import inside_effect
from langgraph_rollback._declare import definition_of
from langgraph_rollback._langgraph import current_task
from langgraph_rollback._models import Reversibility
from langgraph_rollback.core.record import record_flow
from langgraph_rollback.core.registry import ToolDefinition
from langgraph_rollback.drivers import run_async, run_sync

__all__ = ["arecord_tool_call", "classify_tool", "record_tool_call"]


def classify_tool(tool: BaseTool | None) -> Reversibility | None:
    """How an undeclared tool counts: None when it has no side effect.

    MCP annotations (in `tool.metadata`, as `langchain-mcp-adapters` puts
    them) decide when present: read-only tools are not effects; destructive
    ones are irreversible. Everything else is `Reversibility.UNKNOWN`.
    """
    metadata = getattr(tool, "metadata", None) or {}
    if metadata.get("readOnlyHint") is True:
        return None
    if metadata.get("destructiveHint") is True:
        return Reversibility.IRREVERSIBLE
    return Reversibility.UNKNOWN


def _plan(request: Any) -> tuple[Any, ToolDefinition] | None:
    """The task and definition to record `request` under, or None to pass it on."""
    tool = request.tool
    if tool is not None and definition_of(tool) is not None:
        return None  # a declared tool records itself
    kind = classify_tool(tool)
    if kind is None:
        return None
    ctx = current_task(str(request.tool_call["name"]))
    if ctx is None or inside_effect():
        return None
    name = str(request.tool_call["name"])
    reason = (
        "marked destructive by its MCP server"
        if kind is Reversibility.IRREVERSIBLE
        else None
    )
    return ctx, ToolDefinition(
        name=name, kind=kind, origin=f"undeclared:{name}", reason=reason
    )


def record_tool_call(request: Any, execute: Callable[[Any], Any]) -> Any:
    """`ToolNode(wrap_tool_call=...)` hook: record the call in the ledger.

    Also the body of `RollbackMiddleware.wrap_tool_call` for `create_agent`.
    """
    planned = _plan(request)
    if planned is None:
        return execute(request)
    ctx, definition = planned
    flow = record_flow(
        ctx,
        definition,
        dict(request.tool_call.get("args") or {}),
        tool_call_id=request.tool_call.get("id"),
        serde=ctx.store.ledger_codec,
    )
    return run_sync(flow, ctx.store, perform=lambda: execute(request))


async def arecord_tool_call(
    request: Any, execute: Callable[[Any], Awaitable[Any]]
) -> Any:
    """`ToolNode(awrap_tool_call=...)` hook: the async `record_tool_call`."""
    planned = _plan(request)
    if planned is None:
        return await execute(request)
    ctx, definition = planned
    flow = record_flow(
        ctx,
        definition,
        dict(request.tool_call.get("args") or {}),
        tool_call_id=request.tool_call.get("id"),
        serde=ctx.store.ledger_codec,
    )
    return await run_async(flow, ctx.store, perform=lambda: execute(request))
