"""The checkpointer `langgraph.json` points at: a saver chosen by one variable."""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from langgraph_rollback._errors import InvalidConfigError
from langgraph_rollback.savers.aio_sqlite import AsyncSqliteRollbackSaver
from langgraph_rollback.savers.base import BaseRollbackSaver

__all__ = ["UNDO_ENV", "URI_ENV", "ServerConfigError", "checkpointer", "open_saver"]

logger = logging.getLogger(__name__)

URI_ENV = "LANGGRAPH_ROLLBACK_URI"
"""Names the database of the saver: a SQLite file path (relative paths are
relative to the server's working directory), or a `postgresql://` URL."""

UNDO_ENV = "LANGGRAPH_ROLLBACK_UNDO_DELETED_RUNS"
"""`false` (or `0`, `no`, `off`) turns off undoing the runs the server
deletes (`BaseRollbackSaver.undo_deleted_runs`); on by default."""

_POSTGRES = ("postgresql://", "postgres://")
_OFF = ("0", "false", "no", "off")


class ServerConfigError(InvalidConfigError):
    """The server's environment names no usable saver."""


def _uri() -> str:
    uri = os.environ.get(URI_ENV, "").strip()
    if not uri:
        raise ServerConfigError(
            f"{URI_ENV} is not set, so the Agent Server has no database for "
            'the rollback saver. Fix: set it in langgraph.json\'s "env" (or the '
            'environment), e.g. "LANGGRAPH_ROLLBACK_URI": "rollback.sqlite" or '
            '"postgresql://user:pass@host:5432/rollback". The server\'s own '
            'DATABASE_URI is not used: under `langgraph dev` it is ":memory:", '
            "and in a PostgreSQL deployment it is the server's own database."
        )
    if uri == ":memory:" or uri.startswith("file::memory:"):
        raise ServerConfigError(
            f"{URI_ENV}={uri!r} is an in-memory database: each of the server's "
            "event-loop threads would get its own, and the ledger would vanish "
            "at every restart. Fix: name a file, e.g. "
            '"LANGGRAPH_ROLLBACK_URI": "rollback.sqlite".'
        )
    if "://" in uri and not uri.startswith(_POSTGRES):
        scheme = uri.split("://", 1)[0]
        raise ServerConfigError(
            f"{URI_ENV}={uri!r}: the scheme {scheme!r} is not one the rollback "
            "savers speak. Fix: use a SQLite file path (e.g. rollback.sqlite) or "
            "a postgresql:// URL."
        )
    return uri


def open_saver(uri: str) -> AbstractAsyncContextManager[BaseRollbackSaver]:
    """The async saver for `uri` (a SQLite path or a `postgresql://` URL)."""
    if uri.startswith(_POSTGRES):
        try:
            from langgraph_rollback.postgres import AsyncPostgresRollbackSaver
        except ImportError as exc:
            raise ServerConfigError(
                f"{URI_ENV} is a PostgreSQL URL, and {exc} Fix: install "
                "'langgraph-rollback[postgres]' into the server's environment."
            ) from exc
        saver: Any = AsyncPostgresRollbackSaver.from_conn_string(uri)
    else:
        saver = AsyncSqliteRollbackSaver.from_conn_string(uri)
    result: AbstractAsyncContextManager[BaseRollbackSaver] = saver
    return result


@asynccontextmanager
async def checkpointer() -> AsyncIterator[BaseRollbackSaver]:
    """The rollback saver the Agent Server uses, from `LANGGRAPH_ROLLBACK_URI`.

    Set up (tables created and migrated) before it is yielded, with
    `undo_deleted_runs` on unless `LANGGRAPH_ROLLBACK_UNDO_DELETED_RUNS` is
    false. The server enters it once per event-loop thread and exits it at
    shutdown.

    Raises:
        ServerConfigError: `LANGGRAPH_ROLLBACK_URI` is unset, in-memory, or
            of a scheme no saver speaks.
    """
    uri = _uri()
    async with open_saver(uri) as saver:
        await saver.setup()  # type: ignore[attr-defined]
        saver.undo_deleted_runs = os.environ.get(UNDO_ENV, "").lower() not in _OFF
        logger.info(
            "langgraph-rollback: %s on %s (undo_deleted_runs=%s)",
            type(saver).__name__,
            uri.split("@")[-1] if uri.startswith(_POSTGRES) else uri,
            saver.undo_deleted_runs,
        )
        yield saver
