"""PostgreSQL savers (optional): `pip install langgraph-rollback[postgres]`.

```python
from langgraph_rollback.postgres import AsyncPostgresRollbackSaver, PostgresRollbackSaver
```
"""

from __future__ import annotations

import importlib.util

try:
    import psycopg  # noqa: F401
    import psycopg_pool  # noqa: F401
    from langgraph.checkpoint.postgres import PostgresSaver  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised in a subprocess test
    if exc.name is None and importlib.util.find_spec("psycopg") is not None:
        # psycopg is installed but found no libpq: neither psycopg[binary]
        # nor the system's library (its message lists what it tried).
        missing = (
            "psycopg is installed but has no implementation to talk to "
            f"PostgreSQL ({str(exc).strip().splitlines()[0]}). Fix: pip install "
            "'psycopg[binary]', or install the system's libpq (e.g. apt-get "
            "install libpq5)."
        )
    else:
        missing = (
            "The PostgreSQL savers need psycopg, psycopg-pool and "
            "langgraph-checkpoint-postgres, which are not installed "
            f"({exc.name or exc}). Fix: pip install 'langgraph-rollback[postgres]'."
        )
    raise ImportError(missing) from exc

from langgraph_rollback.savers.aio_postgres import AsyncPostgresRollbackSaver
from langgraph_rollback.savers.postgres import PostgresRollbackSaver

__all__ = ["AsyncPostgresRollbackSaver", "PostgresRollbackSaver"]
