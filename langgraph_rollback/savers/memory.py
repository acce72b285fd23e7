"""`InMemoryRollbackSaver`: LangGraph's `InMemorySaver` plus the ledger."""

from __future__ import annotations

import itertools
import os
import threading
from collections import defaultdict
from collections.abc import Sequence
from typing import Any, TypeVar, cast

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import ChannelVersions, Checkpoint, CheckpointMetadata
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.checkpoint.serde.base import SerializerProtocol

from langgraph_rollback._errors import RollbackInProgressError
from langgraph_rollback.core.ledger import LedgerRow, changed_row
from langgraph_rollback.core.locks import LockHolder
from langgraph_rollback.core.ops import (
    AuditRow,
    Begin,
    BeginIfNewKey,
    CheckpointLink,
    ExistingCheckpoints,
    FindCheckpoint,
    FindEffect,
    FindNamespace,
    FindRun,
    LockThread,
    ReadAncestry,
    ReadAudit,
    ReadHead,
    ReadNamespaceStates,
    ReadSubtree,
    ReadUpdatedFrom,
    SaveRollback,
    Select,
    StorageOp,
    UnlockThread,
    Update,
    WriteAudit,
)
from langgraph_rollback.core.query import may_be_earlier
from langgraph_rollback.core.registry import ToolRegistry
from langgraph_rollback.core.restore import is_persistent_namespace, namespace_states
from langgraph_rollback.core.task import GuardMode
from langgraph_rollback.savers.base import BaseRollbackSaver, mark_restored_copy
from langgraph_rollback.savers.lifecycle import (
    prune_args,
    reanchor,
    refuse_delta,
    updated_from,
)

__all__ = ["InMemoryRollbackSaver"]

R = TypeVar("R")


class InMemoryRollbackSaver(BaseRollbackSaver, InMemorySaver):
    """An `InMemorySaver` that also keeps the ledger of tool side effects.

    For tests, notebooks and demos: everything is lost when the process ends.
    Sync and async APIs both work (the async methods do no I/O). Ledger
    payloads still go through `serde`, so what cannot be stored in a durable
    saver is refused here too. The rollback lock is per process.

    `delete_thread`, `delete_for_runs`, `copy_thread` and `prune` work on
    checkpoints and writes; the ledger keeps every effect (see
    `savers.lifecycle.LIFECYCLE`).

    Args:
        serde: Serializer for checkpoints; when it encrypts, the ledger's
            payloads are encrypted with its cipher too.
        registry: Where rollbacks through this saver find inverses. Defaults
            to the process-wide `default_registry`.
        guard: What happens when an irreversible tool is called: "allow"
            (the default), "ask" (an `interrupt()` first) or "block".

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
        guard: GuardMode | None = None,
    ) -> None:
        super().__init__(serde=serde)
        self._init_rollback(registry, guard, keeps_outcomes=False)
        self._effects: dict[str, LedgerRow] = {}
        self._thread_effects: defaultdict[str, list[str]] = defaultdict(list)
        self._keyed_effects: defaultdict[tuple[str, str], list[str]] = defaultdict(list)
        """Each (thread, call key)'s effect ids, as an SQL index has them: a
        call looks for its earlier rows by key before its intent is written."""
        self._rollbacks: dict[str, dict[str, Any]] = {}
        self._audit: dict[str, AuditRow] = {}
        """The audit trail, in the order written (dicts keep insertion order)."""
        self._locks: dict[str, LockHolder] = {}
        """Each thread's rollback lock holder."""
        self._seq = itertools.count(1)
        self._ledger_lock = threading.Lock()
        self._heads: dict[str, str] = {}
        """Each thread's newest root checkpoint id, as last seen (a cache)."""
        self._heads_lock = threading.Lock()

    def _load_digest_key(self) -> None:
        # The ledger lives as long as the saver: one key of its own.
        self._digest_key = os.urandom(32)

    def put(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        """Upstream `put`; a rollback's restored head is tagged as a copy."""
        tagged = mark_restored_copy(metadata)
        saved = super().put(config, checkpoint, tagged, new_versions)
        if not config["configurable"].get("checkpoint_ns"):
            thread_id = str(config["configurable"]["thread_id"])
            with self._heads_lock:
                head = self._heads.get(thread_id)
                if head is None or checkpoint["id"] > head:
                    self._heads[thread_id] = checkpoint["id"]
        restore = tagged.get("lgrb_restore")
        if isinstance(restore, dict):
            with self._ledger_lock:
                record = self._rollbacks.setdefault(restore["rollback_id"], {})
                record.update(
                    restored_checkpoint_id=checkpoint["id"], status="restored"
                )
        return saved

    # --- thread lifecycle (see `savers.lifecycle.LIFECYCLE`) -------------------------

    def _metadata(self, entry: Any) -> dict[str, Any]:
        loaded: dict[str, Any] = self.serde.loads_typed(entry[1])
        return loaded

    def delete_for_runs(self, run_ids: Sequence[str]) -> None:
        """Delete the checkpoints and writes of these runs; the ledger stays.

        With `undo_deleted_runs` on, the runs' effects are undone first.
        """
        self._undo_runs(run_ids)
        self._delete_runs(run_ids)

    def _delete_runs(self, run_ids: Sequence[str]) -> None:
        runs = {str(r) for r in run_ids}
        if not runs:
            return
        deleted = {
            (thread_id, checkpoint_id): entry[2]
            for thread_id, namespaces in list(self.storage.items())
            for checkpoint_id, entry in list(namespaces.get("", {}).items())
            if self._metadata(entry).get("run_id") in runs
        }
        with self._ledger_lock:
            based = [
                (row.effect_id, row.thread_id, row.base_checkpoint_id)
                for row in self._effects.values()
                if row.base_checkpoint_id is not None
                and (row.thread_id, row.base_checkpoint_id) in deleted
            ]
            for effect_id, base in reanchor(deleted, based):
                row = self._effects[effect_id]
                self._effects[effect_id] = changed_row(row, base_checkpoint_id=base)
        for thread_id, namespaces in list(self.storage.items()):
            for ns, checkpoints in list(namespaces.items()):
                for checkpoint_id, entry in list(checkpoints.items()):
                    if self._metadata(entry).get("run_id") in runs:
                        del checkpoints[checkpoint_id]
                        self.writes.pop((thread_id, ns, checkpoint_id), None)

    def copy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        """Copy a thread's checkpoints and writes; its effects stay with the source."""
        source, target = str(source_thread_id), str(target_thread_id)
        with self._heads_lock:  # no head is read from the cache mid-copy
            for ns, checkpoints in list(self.storage.get(source, {}).items()):
                self.storage[target][ns].update(checkpoints)
            self._heads.pop(target, None)
        for (thread_id, ns, checkpoint_id), writes in list(self.writes.items()):
            if thread_id == source:
                self.writes[(target, ns, checkpoint_id)] = dict(writes)
        for (thread_id, ns, channel, version), blob in list(self.blobs.items()):
            if thread_id == source:
                self.blobs[(target, ns, channel, version)] = blob

    def prune(
        self, thread_ids: Sequence[str], *, strategy: str = "keep_latest"
    ) -> None:
        """Prune checkpoints ("keep_latest" or "delete"); the ledger stays."""
        threads = prune_args(thread_ids, strategy)
        if strategy == "delete":
            for thread_id in threads:
                self.delete_thread(thread_id)
            return
        refuse_delta(
            [
                t
                for t in threads
                for checkpoints in self.storage.get(t, {}).values()
                for entry in checkpoints.values()
                if {"counters_since_delta_snapshot", "delta_writes_versioned"}
                & set(self._metadata(entry))
            ]
        )
        for thread_id in threads:
            for ns, checkpoints in list(self.storage.get(thread_id, {}).items()):
                if not checkpoints:
                    continue
                head = max(checkpoints)
                for checkpoint_id in [c for c in checkpoints if c != head]:
                    del checkpoints[checkpoint_id]
                    self.writes.pop((thread_id, ns, checkpoint_id), None)
                checkpoint, metadata, _ = checkpoints[head]
                checkpoints[head] = (checkpoint, metadata, None)

    async def adelete_for_runs(self, run_ids: Sequence[str]) -> None:
        """Async `delete_for_runs`."""
        await self._aundo_runs(run_ids)
        self._delete_runs(run_ids)

    async def acopy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        """Async `copy_thread`."""
        self.copy_thread(source_thread_id, target_thread_id)

    async def aprune(
        self, thread_ids: Sequence[str], *, strategy: str = "keep_latest"
    ) -> None:
        """Async `prune`."""
        self.prune(thread_ids, strategy=strategy)

    # --- the one door to storage ------------------------------------------------

    def _execute(self, op: StorageOp[R]) -> R:
        return cast(R, self._dispatch(op))

    async def _aexecute(self, op: StorageOp[R]) -> R:
        # No I/O: the sync implementation serves both flavours.
        return cast(R, self._dispatch(op))

    def _dispatch(self, op: StorageOp[Any]) -> object:
        match op:
            case Begin():
                return self._begin(op.row)
            case BeginIfNewKey():
                return self._begin(op.row, if_new_key=True)
            case Update():
                return self._update(op)
            case Select():
                return self._select(op)
            case SaveRollback():
                self._save_rollback(op)
                return None
            case LockThread():
                self._lock(op)
                return None
            case UnlockThread():
                self._unlock(op)
                return None
            case ReadHead():
                return self._head(op.thread_id)
            case FindCheckpoint():
                return self._find_checkpoint(op)
            case FindNamespace():
                namespaces = self.storage.get(op.thread_id, {})
                return sorted(
                    ns
                    for ns, saved in list(namespaces.items())
                    if ns and op.checkpoint_id in saved
                )
            case FindEffect():
                row = self._effects.get(op.effect_id)
                return None if row is None else row.thread_id
            case FindRun():
                kept = list(self._effects.values())
                return sorted({r.thread_id for r in kept if r.run_id == op.run_id})
            case ReadAncestry():
                return self._ancestry(op)
            case ReadSubtree():
                return self._subtree(op)
            case ExistingCheckpoints():
                return self._existing(op)
            case ReadUpdatedFrom():
                return self._updated_from(op)
            case ReadNamespaceStates():
                return self._namespace_states(op)
            case WriteAudit():
                with self._ledger_lock:
                    self._audit.setdefault(op.row.audit_id, op.row)
                return None
            case ReadAudit():
                with self._ledger_lock:
                    rows = [
                        r for r in self._audit.values() if r.thread_id == op.thread_id
                    ]
                return rows[::-1][: op.limit]
        raise TypeError(f"{type(self).__name__} cannot perform {op!r}")

    # --- checkpoint graph ---------------------------------------------------------

    def _root(self, thread_id: str) -> dict[str, Any]:
        return dict(self.storage.get(thread_id, {}).get("", {}))

    def _link(self, checkpoint_id: str, entry: Any) -> CheckpointLink:
        _, metadata, parent = entry
        meta = self.serde.loads_typed(metadata)
        restore = meta.get("lgrb_restore") or {}
        return CheckpointLink.from_row(
            checkpoint_id,
            parent,
            restore.get("copies"),
            meta.get("source"),
            meta.get("step"),
            meta.get("run_id"),
        )

    def _head(self, thread_id: str) -> str | None:
        # Checkpoints enter only through `put` (and `copy_thread`, which drops
        # the cache), so a cached head that is still stored is the newest.
        with self._heads_lock:
            head = self._heads.get(thread_id)
            root = self.storage.get(thread_id, {}).get("", {})
            if head is None or head not in root:
                head = max(self._root(thread_id), default=None)
                if head is None:
                    self._heads.pop(thread_id, None)
                else:
                    self._heads[thread_id] = head
        return head

    def _find_checkpoint(self, op: FindCheckpoint) -> list[str]:
        return sorted(
            thread
            for thread, namespaces in list(self.storage.items())
            if op.checkpoint_id in namespaces.get("", {})
        )

    def _namespace_states(
        self, op: ReadNamespaceStates
    ) -> list[tuple[str, str, str | None]]:
        rows: list[tuple[str, str, str | None]] = []
        for checkpoint_ns, checkpoints in list(
            self.storage.get(op.thread_id, {}).items()
        ):
            if not is_persistent_namespace(checkpoint_ns):
                continue
            for checkpoint_id, (_, metadata, _) in list(checkpoints.items()):
                parents = self.serde.loads_typed(metadata).get("parents") or {}
                rows.append((checkpoint_ns, checkpoint_id, parents.get("")))
        return namespace_states(rows, op.before)

    def _ancestry(self, op: ReadAncestry) -> list[CheckpointLink]:
        root = self._root(op.thread_id)
        links: list[CheckpointLink] = []
        current: str | None = op.start
        while current is not None and current in root:
            link = self._link(current, root[current])
            links.append(link)
            if link.stands_for(op.stop):
                break
            current = link.parent_id
        return links

    def _subtree(self, op: ReadSubtree) -> list[CheckpointLink]:
        root = self._root(op.thread_id)
        if op.root not in root:
            return []
        children: defaultdict[str, list[str]] = defaultdict(list)
        for checkpoint_id, (_, _, parent) in root.items():
            if parent is not None:
                children[parent].append(checkpoint_id)
        found, todo = [], [op.root]
        while todo:
            current = todo.pop()
            found.append(self._link(current, root[current]))
            todo.extend(children.get(current, ()))
        return found

    def _updated_from(self, op: ReadUpdatedFrom) -> str | None:
        root = self._root(op.thread_id)
        chain: list[tuple[str, str | None]] = []
        current: str | None = op.checkpoint_id
        while current is not None and current in root:
            link = self._link(current, root[current])
            chain.append((current, link.source))
            if link.source != "update":
                break
            current = link.parent_id
        return updated_from(chain)

    def _existing(self, op: ExistingCheckpoints) -> set[str]:
        root = self._root(op.thread_id)
        return {c for c in op.checkpoint_ids if c in root}

    # --- ledger -----------------------------------------------------------------

    def _begin(
        self, row: LedgerRow, *, if_new_key: bool = False
    ) -> tuple[LedgerRow, bool] | None:
        with self._ledger_lock:
            holder = self._locks.get(row.thread_id)
            if holder is not None:
                raise RollbackInProgressError(
                    thread_id=row.thread_id, holder=str(holder)
                )
            if if_new_key and any(
                may_be_earlier(self._effects[effect_id], row)
                for effect_id in self._keyed_effects.get(
                    (row.thread_id, row.call_key), ()
                )
            ):
                return None
            existing = self._effects.get(row.effect_id)
            if existing is not None:
                return existing, False
            base = row.base_checkpoint_id or self._head(row.thread_id)
            stored = changed_row(row, seq=next(self._seq), base_checkpoint_id=base)
            self._effects[row.effect_id] = stored
            self._thread_effects[row.thread_id].append(row.effect_id)
            self._keyed_effects[row.thread_id, row.call_key].append(row.effect_id)
            return stored, True

    def _update(self, op: Update) -> bool:
        with self._ledger_lock:
            row = self._effects.get(op.effect_id)
            if row is None or (op.expect and row.status not in op.expect):
                return False
            if op.expect_attempt is not None and row.attempt != op.expect_attempt:
                return False
            changes: dict[str, Any] = dict(op.changes)
            self._effects[op.effect_id] = changed_row(row, **changes)
            return True

    def _select(self, op: Select) -> list[LedgerRow]:
        query = op.query
        with self._ledger_lock:
            if query.effect_id is not None:
                ids = [query.effect_id] if query.effect_id in self._effects else []
            elif query.call_key is not None:
                ids = list(
                    self._keyed_effects.get((query.thread_id, query.call_key), ())
                )
            else:
                ids = list(self._thread_effects.get(query.thread_id, ()))
            rows = [self._effects[i] for i in reversed(ids)]
        selected = [row for row in rows if query.matches(row)]
        if query.limit is not None:
            selected = selected[: query.limit]
        return selected

    def _save_rollback(self, op: SaveRollback) -> None:
        with self._ledger_lock:
            record = dict(op.record)
            self._rollbacks.setdefault(record["rollback_id"], {}).update(record)

    def _lock(self, op: LockThread) -> None:
        with self._ledger_lock:
            current = self._locks.get(op.thread_id)
            if current is not None and current.token != op.holder.token:
                # In-process locks: a holder in the map is a live rollback.
                raise RollbackInProgressError(
                    thread_id=op.thread_id, holder=str(current)
                )
            self._locks[op.thread_id] = op.holder

    def _unlock(self, op: UnlockThread) -> None:
        holder = op.holder
        with self._ledger_lock:
            current = self._locks.get(op.thread_id)
            if current is not None and (
                holder is None or current.token == holder.token
            ):
                del self._locks[op.thread_id]
