"""Open a rollback saver on a durable store named on a child's command line."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from langgraph_rollback import BaseRollbackSaver, SqliteRollbackSaver, ToolRegistry


@contextmanager
def open_saver(
    kind: str, where: str, registry: ToolRegistry
) -> Iterator[BaseRollbackSaver]:
    """A sync saver: `kind` "sqlite" (`where` a file) or "postgres" (a URL)."""
    if kind == "sqlite":
        with SqliteRollbackSaver.from_conn_string(where, registry=registry) as saver:
            yield saver
    elif kind == "postgres":
        from langgraph_rollback.postgres import PostgresRollbackSaver

        with PostgresRollbackSaver.from_conn_string(where, registry=registry) as saver:
            saver.setup()
            yield saver
    else:
        raise SystemExit(f"unknown store kind {kind!r}")
