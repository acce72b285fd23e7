"""On LangGraph's Agent Server: a checkpointer and routes for `langgraph.json`.

```json
{
  "dependencies": ["."],
  "graphs": {"agent": "./agent.py:graph"},
  "checkpointer": {"path": "langgraph_rollback.server.checkpointer"},
  "http": {"app": "langgraph_rollback.server:app"},
  "env": {"LANGGRAPH_ROLLBACK_URI": "rollback.sqlite"}
}
```

- `checkpointer`: the async context manager the server enters once per event
  loop thread; it opens the saver `LANGGRAPH_ROLLBACK_URI` names (a SQLite
  path, or a `postgresql://` URL) with `undo_deleted_runs` on, so a run the
  server cancels with `multitask_strategy="rollback"` is undone in the world
  too (`LANGGRAPH_ROLLBACK_UNDO_DELETED_RUNS=false` turns that off).
- `app`: the routes (`GET /threads/{id}/effects`,
  `POST /threads/{id}/rollback/plan`, `POST /threads/{id}/rollback`,
  `POST /threads/{id}/effects/{effect_id}/resolve`).

Note the dot in the checkpointer's path and the colon in the app's: the
server loads the two with different rules.
"""

from __future__ import annotations

from langgraph_rollback.server._checkpointer import (
    UNDO_ENV,
    URI_ENV,
    ServerConfigError,
    checkpointer,
    open_saver,
)
from langgraph_rollback.server._routes import app, routes

__all__ = [
    "UNDO_ENV",
    "URI_ENV",
    "ServerConfigError",
    "app",
    "checkpointer",
    "open_saver",
    "routes",
]
