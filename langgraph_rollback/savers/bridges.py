"""The other flavour of a saver's API, bridged: one forwarder per door.

A backend implements storage in one flavour: `_aexecute` for savers bound to
an event loop (`AsyncSqliteSaver`, `AsyncPostgresSaver` underneath), `_execute`
for sync ones (`SqliteSaver`, `PostgresSaver`). The bridge provides the other,
and the same for the checkpoint methods upstream's class lacks.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from itertools import islice
from typing import Any, TypeVar

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
)

from langgraph_rollback.core.ops import StorageOp
from langgraph_rollback.savers.base import BaseRollbackSaver

__all__ = ["SyncBackedAsync", "SyncOverAsync"]

T = TypeVar("T")
R = TypeVar("R")


class SyncOverAsync(BaseRollbackSaver):
    """The sync API of a saver bound to one event loop (`self.loop`).

    As upstream's async savers do, each sync call runs its async twin on that
    loop and waits, so it works from any other thread; on the loop's own
    thread it raises, naming the `a*` method to await instead.
    """

    loop: asyncio.AbstractEventLoop

    def _on_loop(self, make: Callable[[], Awaitable[T]]) -> T:
        try:
            if asyncio.get_running_loop() is self.loop:
                raise asyncio.InvalidStateError(
                    f"Synchronous calls to {type(self).__name__} are only allowed "
                    "from a different thread. On the event loop's thread, await the "
                    "async twin (e.g. `await saver.alist_effects(...)`, `await "
                    "arollback(...)`, `await graph.ainvoke(...)`), and make declared "
                    "tools called inside async nodes `async def`."
                )
        except RuntimeError:
            pass

        async def run() -> T:
            return await make()

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result()

    def _execute(self, op: StorageOp[R]) -> R:
        return self._on_loop(lambda: self._aexecute(op))

    def delete_for_runs(self, run_ids: Sequence[str]) -> None:
        """Sync `adelete_for_runs`, from another thread."""
        self._on_loop(lambda: self.adelete_for_runs(run_ids))

    def copy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        """Sync `acopy_thread`, from another thread."""
        self._on_loop(lambda: self.acopy_thread(source_thread_id, target_thread_id))

    def prune(
        self, thread_ids: Sequence[str], *, strategy: str = "keep_latest"
    ) -> None:
        """Sync `aprune`, from another thread."""
        self._on_loop(lambda: self.aprune(thread_ids, strategy=strategy))


_LIST_BATCH = 64
"""Checkpoints fetched per thread hop by `SyncBackedAsync.alist`."""


class SyncBackedAsync(BaseRollbackSaver):
    """The async API of a saver whose upstream class is sync-only
    (`SqliteSaver`, `PostgresSaver`): each call runs its sync twin in a
    worker thread (`asyncio.to_thread`).

    As upstream's sync `list()` does, `alist()` holds the saver's lock between
    its batches: collect the results before writing to the saver.
    """

    async def _aexecute(self, op: StorageOp[R]) -> R:
        return await asyncio.to_thread(self._execute, op)

    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        """Async `get_tuple`, run in a worker thread."""
        return await asyncio.to_thread(self.get_tuple, config)

    async def alist(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[CheckpointTuple]:
        """Async `list`: streams from a worker thread, a batch per hop."""
        iterator = self.list(config, filter=filter, before=before, limit=limit)
        try:
            while True:
                batch = await asyncio.to_thread(_take, iterator, _LIST_BATCH)
                for item in batch:
                    yield item
                if len(batch) < _LIST_BATCH:
                    return
        finally:
            close = getattr(iterator, "close", None)
            if close is not None:
                await asyncio.to_thread(close)

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        """Async `put`, run in a worker thread."""
        return await asyncio.to_thread(
            self.put, config, checkpoint, metadata, new_versions
        )

    async def aput_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        """Async `put_writes`, run in a worker thread."""
        await asyncio.to_thread(self.put_writes, config, writes, task_id, task_path)

    async def adelete_thread(self, thread_id: str) -> None:
        """Async `delete_thread`, run in a worker thread."""
        await asyncio.to_thread(self.delete_thread, thread_id)

    async def adelete_for_runs(self, run_ids: Sequence[str]) -> None:
        """Async `delete_for_runs`, run in a worker thread."""
        await asyncio.to_thread(self.delete_for_runs, run_ids)

    async def acopy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        """Async `copy_thread`, run in a worker thread."""
        await asyncio.to_thread(self.copy_thread, source_thread_id, target_thread_id)

    async def aprune(
        self, thread_ids: Sequence[str], *, strategy: str = "keep_latest"
    ) -> None:
        """Async `prune`, run in a worker thread."""
        await asyncio.to_thread(self.prune, thread_ids, strategy=strategy)


def _take(iterator: Iterator[CheckpointTuple], n: int) -> list[CheckpointTuple]:
    return list(islice(iterator, n))
