"""PostgreSQL savers (optional): `pip install langgraph-rollback[postgres]`.

```python
from langgraph_rollback.postgres import AsyncPostgresRollbackSaver, PostgresRollbackSaver
```
"""

from __future__ import annotations

try:
    import psycopg  # noqa: F401
    import psycopg_pool  # noqa: F401
    from langgraph.checkpoint.postgres import PostgresSaver  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised in a subprocess test
    raise ImportError(
        "The PostgreSQL savers need psycopg, psycopg-pool and "
        "langgraph-checkpoint-postgres, which are not installed "
        f"({exc.name or exc}). Fix: pip install 'langgraph-rollback[postgres]'."
    ) from exc

from langgraph_rollback.savers.aio_postgres import AsyncPostgresRollbackSaver
from langgraph_rollback.savers.postgres import PostgresRollbackSaver

__all__ = ["AsyncPostgresRollbackSaver", "PostgresRollbackSaver"]
