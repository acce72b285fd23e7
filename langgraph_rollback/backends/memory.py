"""`InMemoryRollbackSaver`: LangGraph's `InMemorySaver` plus the ledger."""

from __future__ import annotations

import itertools
import threading
from collections import defaultdict
from dataclasses import replace
from typing import Any

from langgraph.checkpoint.memory import InMemorySaver
from langgraph.checkpoint.serde.base import SerializerProtocol

from langgraph_rollback._ledger import EffectQuery, LedgerRow, Update
from langgraph_rollback._registry import ToolRegistry
from langgraph_rollback.backends.base import BaseRollbackSaver

__all__ = ["InMemoryRollbackSaver"]


class InMemoryRollbackSaver(BaseRollbackSaver, InMemorySaver):
    """An `InMemorySaver` that also keeps the ledger of tool side effects.

    For tests, notebooks and demos: everything is lost when the process ends.
    Sync and async APIs both work (the async methods do no I/O). Ledger
    payloads still go through `serde`, so what cannot be stored in a durable
    saver is refused here too.

    `delete_thread` removes the thread's checkpoints and writes but keeps its
    ledger: effects the agent made are still in the world.

    Args:
        serde: Serializer for checkpoints and ledger payloads.
        registry: Where rollbacks through this saver find inverses. Defaults
            to the process-wide `default_registry`.

    Example:
        ```python
        saver = InMemoryRollbackSaver()
        graph = builder.compile(checkpointer=saver)
        graph.invoke(inputs, {"configurable": {"thread_id": "1"}})
        saver.list_effects({"configurable": {"thread_id": "1"}})
        ```
    """

    def __init__(
        self,
        *,
        serde: SerializerProtocol | None = None,
        registry: ToolRegistry | None = None,
    ) -> None:
        super().__init__(serde=serde)
        if registry is not None:
            self.registry = registry
        self._effects: dict[str, LedgerRow] = {}
        self._thread_effects: defaultdict[str, list[str]] = defaultdict(list)
        self._seq = itertools.count(1)
        self._ledger_lock = threading.Lock()

    def _head(self, thread_id: str) -> str | None:
        checkpoints = self.storage.get(thread_id, {}).get("", {})
        return max(list(checkpoints), default=None)

    def _ledger_begin(self, row: LedgerRow) -> tuple[LedgerRow, bool]:
        with self._ledger_lock:
            existing = self._effects.get(row.effect_id)
            if existing is not None:
                return existing, False
            stored = replace(
                row, seq=next(self._seq), base_checkpoint_id=self._head(row.thread_id)
            )
            self._effects[row.effect_id] = stored
            self._thread_effects[row.thread_id].append(row.effect_id)
            return stored, True

    def _ledger_update(self, update: Update) -> bool:
        with self._ledger_lock:
            row = self._effects.get(update.effect_id)
            if row is None or (update.expect and row.status not in update.expect):
                return False
            changes: dict[str, Any] = dict(update.changes)
            self._effects[update.effect_id] = replace(row, **changes)
            return True

    def _ledger_select(self, query: EffectQuery) -> list[LedgerRow]:
        with self._ledger_lock:
            ids = list(self._thread_effects.get(query.thread_id, ()))
            rows = [self._effects[i] for i in reversed(ids)]
        selected = [row for row in rows if query.matches(row)]
        if query.limit is not None:
            selected = selected[: query.limit]
        return selected

    async def _aledger_begin(self, row: LedgerRow) -> tuple[LedgerRow, bool]:
        return self._ledger_begin(row)

    async def _aledger_update(self, update: Update) -> bool:
        return self._ledger_update(update)

    async def _aledger_select(self, query: EffectQuery) -> list[LedgerRow]:
        return self._ledger_select(query)
