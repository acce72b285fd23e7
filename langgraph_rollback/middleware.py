"""`RollbackMiddleware` for LangChain's `create_agent` (optional).

Needs `langchain` (`pip install 'langgraph-rollback[agents]'`):

```python
from langchain.agents import create_agent
from langgraph_rollback import SqliteRollbackSaver
from langgraph_rollback.middleware import RollbackMiddleware

agent = create_agent(model, tools, middleware=[RollbackMiddleware()], checkpointer=saver)
```
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

try:
    from langchain.agents.middleware import AgentMiddleware
except ImportError as exc:  # pragma: no cover - exercised in a subprocess test
    raise ImportError(
        "RollbackMiddleware needs langchain's create_agent, which is not installed "
        f"({exc.name or exc}). Fix: pip install 'langgraph-rollback[agents]'."
    ) from exc

from langgraph_rollback._capture import arecord_tool_call, record_tool_call

__all__ = ["RollbackMiddleware"]


class RollbackMiddleware(AgentMiddleware):
    """Records every tool call of a `create_agent` agent in the ledger.

    Declared tools record themselves; other tools are recorded with unknown
    reversibility (MCP annotations decide when present), as with
    `record_tool_call` on a `ToolNode`. The agent's checkpointer must be a
    rollback saver.
    """

    def wrap_tool_call(self, request: Any, handler: Callable[[Any], Any]) -> Any:
        """Record the call, then run it through `handler`."""
        return record_tool_call(request, handler)

    async def awrap_tool_call(
        self, request: Any, handler: Callable[[Any], Awaitable[Any]]
    ) -> Any:
        """Async `wrap_tool_call`."""
        return await arecord_tool_call(request, handler)
