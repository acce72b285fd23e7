"""What every rollback saver adds to a LangGraph checkpointer.

`BaseRollbackSaver` is mixed into a subclass of one of LangGraph's own savers
(`InMemorySaver`, `SqliteSaver`, ...). Checkpoint storage stays upstream's;
the mixin adds:

- the one door to storage the core's flows use (`execute` / `aexecute`,
  `core.store`), which keeps tool outcomes for the next write
  (`savers.kept`), reports fault points to `probe`, and hands every other
  operation to the backend's own `_execute` (or `_aexecute`): one method per
  backend, the other flavour bridged (`savers.bridges`);
- the ledger's public API (`list_effects`, `get_effect`, `resolve_effect`,
  `release_rollback_lock` and their async twins), each a short driver of a
  flow.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any, TypeVar, cast

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    BaseCheckpointSaver,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
    copy_checkpoint,
    create_checkpoint,
    empty_checkpoint,
)

from langgraph_rollback._current import restore_mark
from langgraph_rollback._errors import (
    EffectNotFoundError,
    InvalidConfigError,
)
from langgraph_rollback._liveness import mark_held, mark_released
from langgraph_rollback._models import AuditEntry, Effect
from langgraph_rollback.core.audit import attributed, audit_flow, check_by
from langgraph_rollback.core.config import (
    StatusFilter,
    effect_id_arg,
    effect_query,
    thread_id_of,
)
from langgraph_rollback.core.ledger import effect_from_row
from langgraph_rollback.core.ledger_codec import LedgerCodec
from langgraph_rollback.core.ops import (
    Begin,
    BeginIfNewKey,
    CopyCheckpoint,
    Flow,
    LockThread,
    ReadCheckpoint,
    Select,
    StorageOp,
    UnlockThread,
    Update,
    do,
)
from langgraph_rollback.core.query import EffectQuery
from langgraph_rollback.core.registry import ToolRegistry, default_registry
from langgraph_rollback.core.report import RollbackReport
from langgraph_rollback.core.resolve import UNSET, resolve_flow
from langgraph_rollback.core.store import FaultPoint, Probe
from langgraph_rollback.core.task import GUARD_MODES, GuardMode
from langgraph_rollback.drivers import run_async, run_sync
from langgraph_rollback.savers.deleted_runs import aundo_runs, undo_runs
from langgraph_rollback.savers.kept import KeptOutcomes

__all__ = ["BaseRollbackSaver", "mark_restored_copy"]

R = TypeVar("R")
logger = logging.getLogger(__name__)


class BaseRollbackSaver(BaseCheckpointSaver[str], ABC):
    """The ledger half of a rollback saver; see the module docstring.

    Attributes:
        registry: Where rollbacks through this saver find inverses by tool name.
        guard: What happens when an irreversible tool is called: "allow" it,
            "ask" a human first (`interrupt()`), or "block" it. A graph or run
            can override it with `configurable.rollback_guard`.
        probe: Called at each fault point (`core.store.FaultPoint`) with the
            effect it concerns; None (the default) calls nothing. For crash
            drills: kill the process at a point and check that a resume and a
            rollback still leave the world right.
    """

    registry: ToolRegistry = default_registry
    guard: GuardMode = "allow"
    probe: Probe | None = None
    in_flight_wait: float = 10.0
    """Seconds a replay waits for an earlier attempt of the same call that is
    still running in this process (a cancelled run's worker thread) before
    raising `EffectInFlightError`."""
    legacy_keys: bool = False
    """Whether the ledger may hold call keys written before the `v2:` format
    (set by `setup()`); replays then also look them up."""
    undo_deleted_runs: bool = False
    """Whether `adelete_for_runs` (and `delete_for_runs`) first undoes the
    runs' effects, newest first, as a rollback with the default policies
    would (`core.cancelled`). LangGraph's Agent Server deletes a run it
    cancels for `multitask_strategy="rollback"` this way;
    `langgraph_rollback.server.checkpointer` turns this on. It never makes
    the deletion raise: what cannot be undone stays in the ledger, anchored
    where the run started, and the reasons are logged and kept in the
    rollback's report."""
    deleted_run_wait: float = 30.0
    """Seconds `undo_deleted_runs` waits for a deleted run's call still
    running in this process (a cancelled run's sync tool in its thread), and
    for another rollback of the thread to release its lock."""

    unkeyed_keys: bool = False
    """Whether the ledger holds `v2:` keys made before its digest key (set
    by `setup()`); replays then also look them up."""
    _digest_key: bytes | None = None

    def digest_key(self) -> bytes | None:
        """The key argument digests are made with (None: a plain SHA-256).

        Under an `EncryptedSerializer`, the database's own key
        (`savers.keys`), which `setup()` creates or reads.

        Raises:
            InvalidConfigError: The saver is not set up (an async saver
                cannot set itself up here).
        """
        if self.ledger_codec.cipher is None:
            return None
        if self._digest_key is None:
            self._load_digest_key()
        return self._digest_key

    def _load_digest_key(self) -> None:
        """Set `_digest_key`; savers that can run `setup()` here do so."""
        raise InvalidConfigError(
            f"{type(self).__name__} under an EncryptedSerializer makes call keys "
            "with the database's digest key, which setup() reads. Fix: "
            "`await saver.setup()` in every process before running graphs."
        )

    def _keep_digest_key(self, key: tuple[bytes, bool] | None) -> None:
        if key is not None:
            self._digest_key, self.unkeyed_keys = key

    @property
    def ledger_codec(self) -> LedgerCodec:
        """How ledger payloads are written and read (`core.ledger_codec`):
        pickle-free, with an allow-list, encrypted with the cipher of an
        `EncryptedSerializer` serde. Made from the serde the saver was built
        with, so a clone with a wider checkpoint allowlist (LangGraph's
        `with_allowlist`) keeps the same ledger codec."""
        codec = self.__dict__.get("_ledger_codec")
        if codec is None:
            codec = self.__dict__["_ledger_codec"] = LedgerCodec.for_serde(self.serde)
        return cast(LedgerCodec, codec)

    def _init_rollback(
        self,
        registry: ToolRegistry | None,
        guard: GuardMode | None,
        *,
        keeps_outcomes: bool = True,
    ) -> None:
        self.__dict__["_ledger_codec"] = LedgerCodec.for_serde(self.serde)
        if registry is not None:
            self.registry = registry
        if guard is not None:
            if guard not in GUARD_MODES:
                raise InvalidConfigError(
                    f"guard={guard!r} is not a guard policy. Fix: use "
                    '"allow", "ask" or "block".'
                )
            self.guard = guard
        self._kept = KeptOutcomes(enabled=keeps_outcomes, probe=lambda: self.probe)

    # --- the one door to storage -------------------------------------------------

    def execute(self, op: StorageOp[R]) -> R:
        """Perform one storage operation with blocking I/O (`core.store.LedgerStore`)."""
        if self._kept.keep(op):
            return cast(R, True)  # an Update's result: it will be written
        before, after = _fault_points(op) if self.probe is not None else _NO_POINTS
        self._fire(before, op)
        with _liveness_of(op):
            result = self._perform(op)
        self._fire(after, op)
        return result

    def _perform(self, op: StorageOp[R]) -> R:
        if isinstance(op, ReadCheckpoint):
            return cast(R, self.get_tuple(op.config))
        if isinstance(op, CopyCheckpoint):
            source = self.get_tuple(_source(op)) if op.source_id else None
            return cast(R, self.put(_parent(op), *_copy(op, source), {}))
        return self._execute(op)

    async def aexecute(self, op: StorageOp[R]) -> R:
        """Perform one storage operation with async I/O (`core.store.AsyncLedgerStore`)."""
        if self._kept.keep(op):
            return cast(R, True)  # an Update's result: it will be written
        before, after = _fault_points(op) if self.probe is not None else _NO_POINTS
        self._fire(before, op)
        with _liveness_of(op):
            result = await self._aperform(op)
        self._fire(after, op)
        return result

    async def _aperform(self, op: StorageOp[R]) -> R:
        if isinstance(op, ReadCheckpoint):
            return cast(R, await self.aget_tuple(op.config))
        if isinstance(op, CopyCheckpoint):
            source = await self.aget_tuple(_source(op)) if op.source_id else None
            return cast(R, await self.aput(_parent(op), *_copy(op, source), {}))
        return await self._aexecute(op)

    @abstractmethod
    def _execute(self, op: StorageOp[R]) -> R:
        """The backend's blocking implementation of every storage operation."""

    @abstractmethod
    async def _aexecute(self, op: StorageOp[R]) -> R:
        """The backend's async implementation of every storage operation."""

    def _fire(self, point: FaultPoint | None, op: StorageOp[Any]) -> None:
        if point is not None and self.probe is not None:
            self.probe(point, getattr(op, "effect_id", None) or _row_id(op))

    # --- undoing deleted runs (`undo_deleted_runs`) ------------------------------

    def _undo_runs(self, run_ids: Sequence[str]) -> list[RollbackReport]:
        """Undo these runs' effects before their checkpoints go; never raises."""
        return undo_runs(self, run_ids)

    async def _aundo_runs(self, run_ids: Sequence[str]) -> list[RollbackReport]:
        """Async `_undo_runs`."""
        return await aundo_runs(self, run_ids)

    # --- the ledger's public API --------------------------------------------------

    def list_effects(
        self,
        config: RunnableConfig,
        *,
        status: StatusFilter = None,
        tool: str | None = None,
        before: int | None = None,
        limit: int | None = None,
    ) -> list[Effect]:
        """The effects recorded for a thread, newest first (by `seq`).

        Args:
            config: Names the thread (`configurable.thread_id`). With a
                `checkpoint_id`, only effects of tasks that started from that
                checkpoint (of `checkpoint_ns`; for the root namespace,
                subgraph effects included).
            status: Only effects in this status (or these statuses).
            tool: Only effects of this tool.
            before: Only effects with `seq` below this (for paging).
            limit: At most this many.

        Raises:
            InvalidConfigError: The config names no thread, or a filter is
                not one this takes.

        Example:
            ```python
            for effect in saver.list_effects({"configurable": {"thread_id": "1"}}):
                print(effect.seq, effect.tool, effect.status.value, effect.args)
            ```
        """
        query = effect_query(
            config, status=status, tool=tool, before=before, limit=limit
        )
        return run_sync(_list_flow(query, self), self)

    async def alist_effects(
        self,
        config: RunnableConfig,
        *,
        status: StatusFilter = None,
        tool: str | None = None,
        before: int | None = None,
        limit: int | None = None,
    ) -> list[Effect]:
        """Async `list_effects`."""
        query = effect_query(
            config, status=status, tool=tool, before=before, limit=limit
        )
        return await run_async(_list_flow(query, self), self)

    def get_effect(self, config: RunnableConfig, effect_id: str) -> Effect:
        """One effect of the thread `config` names.

        Raises:
            EffectNotFoundError: No such effect on that thread.
            InvalidConfigError: `effect_id` is not an effect id (a string).
        """
        flow = _get_flow(thread_id_of(config), effect_id_arg(effect_id), self)
        return run_sync(flow, self)

    async def aget_effect(self, config: RunnableConfig, effect_id: str) -> Effect:
        """Async `get_effect`."""
        flow = _get_flow(thread_id_of(config), effect_id_arg(effect_id), self)
        return await run_async(flow, self)

    def list_audit(
        self, config: RunnableConfig, *, limit: int | None = None
    ) -> list[AuditEntry]:
        """The human decisions kept for a thread, newest first: operators'
        resolutions, forced and skipped effects, approvals and rejections of
        `RollbackNode`, and the guard's asked calls.

        Raises:
            InvalidConfigError: The config names no thread, or `limit` is not
                a non-negative int.

        Example:
            ```python
            for entry in saver.list_audit({"configurable": {"thread_id": "1"}}):
                print(entry.at, entry.by, entry.action.value, entry.effect_ids)
            ```
        """
        query = effect_query(config, status=None, tool=None, before=None, limit=limit)
        return run_sync(audit_flow(query.thread_id, limit), self)

    async def alist_audit(
        self, config: RunnableConfig, *, limit: int | None = None
    ) -> list[AuditEntry]:
        """Async `list_audit`."""
        query = effect_query(config, status=None, tool=None, before=None, limit=limit)
        return await run_async(audit_flow(query.thread_id, limit), self)

    def release_rollback_lock(self, config: RunnableConfig) -> None:
        """Clear the thread's rollback lock, whoever holds it.

        For a rollback whose process died on another host (locks held by a
        dead process on this host are cleared automatically). The effects it
        claimed stay `compensating` until the next rollback settles them.
        """
        self.execute(UnlockThread(thread_id_of(config), None))

    async def arelease_rollback_lock(self, config: RunnableConfig) -> None:
        """Async `release_rollback_lock`."""
        await self.aexecute(UnlockThread(thread_id_of(config), None))

    def resolve_effect(
        self,
        config: RunnableConfig,
        effect_id: str,
        *,
        applied: bool | None = None,
        compensated: bool | None = None,
        result: Any = UNSET,
        by: str | None = None,
        reason: str | None = None,
    ) -> Effect:
        """Record what you found out about an effect whose outcome is unknown.

        - A `pending` effect: the process died during the call, and a replay
          raises `EffectOutcomeUnknownError`. Check the outside world, then
          pass `applied=True` (it landed: a replay returns `result` instead
          of running it, a rollback undoes it) or `applied=False` (it did
          not: a replay runs it).
        - A `compensating` effect: a rollback died, or its inverse timed out,
          and the next rollback reports it as unresolved. Pass
          `compensated=True` (the inverse took effect) or `False` (it did
          not: the next rollback runs it again).
        - An `applied` effect whose result was lost (`result_known` False;
          a replay raises `EffectResultUnknownError`): pass `result=`, what
          the call returned; a replay then returns it.

        `by` (who decided) and `reason` are kept in the effect's notes and in
        the audit trail (`list_audit`); under the Agent Server's authenticated
        user in `config`, that user is kept, and a different `by` as
        "claimed_by". The CLI's `langgraph-rollback resolve`
        calls this.

        Raises:
            EffectNotFoundError: No such effect on that thread.
            EffectStateError: The effect is in neither status.
            EffectInFlightError: Its call (or inverse) is still being performed:
                wait for it to end, its outcome is recorded then.
            InvalidConfigError: The wrong keyword for its status, or
                `applied=`/`compensated=` not True or False.
        """
        flow = self._resolve(
            config, effect_id, applied, compensated, result, by, reason
        )
        return run_sync(flow, self)

    async def aresolve_effect(
        self,
        config: RunnableConfig,
        effect_id: str,
        *,
        applied: bool | None = None,
        compensated: bool | None = None,
        result: Any = UNSET,
        by: str | None = None,
        reason: str | None = None,
    ) -> Effect:
        """Async `resolve_effect`."""
        flow = self._resolve(
            config, effect_id, applied, compensated, result, by, reason
        )
        return await run_async(flow, self)

    def _resolve(
        self,
        config: RunnableConfig,
        effect_id: str,
        applied: bool | None,
        compensated: bool | None,
        result: Any,
        by: str | None,
        reason: str | None,
    ) -> Flow[Effect]:
        check_by(by, reason)
        who, claimed_by = attributed(by, (config or {}).get("configurable"))
        return resolve_flow(
            thread_id_of(config),
            effect_id_arg(effect_id),
            applied=applied,
            compensated=compensated,
            result=result,
            by=who,
            reason=reason,
            claimed_by=claimed_by,
            registry=self.registry,
            serde=self.ledger_codec,
        )


def _source(op: CopyCheckpoint) -> RunnableConfig:
    conf = {"thread_id": op.thread_id, "checkpoint_ns": op.checkpoint_ns}
    return {"configurable": {**conf, "checkpoint_id": op.source_id}}


def _parent(op: CopyCheckpoint) -> RunnableConfig:
    conf: dict[str, Any] = {
        "thread_id": op.thread_id,
        "checkpoint_ns": op.checkpoint_ns,
    }
    if op.parent_id is not None:
        conf["checkpoint_id"] = op.parent_id
    return {"configurable": conf}


def _copy(
    op: CopyCheckpoint, source: CheckpointTuple | None
) -> tuple[Checkpoint, CheckpointMetadata]:
    """The checkpoint and metadata `CopyCheckpoint` writes: a copy of the
    source under a new id, as LangGraph's `update_state(..., as_node="__copy__")`
    writes one (the same channel versions, so their stored values are
    shared), or an empty state when there is no source."""
    if op.source_id is not None and source is None:
        raise LookupError(
            f"checkpoint {op.source_id} of namespace {op.checkpoint_ns!r} in thread "
            f"{op.thread_id!r} is gone; its state cannot be restored"
        )
    metadata: dict[str, Any] = {"source": "fork", "step": -1, "parents": {}}
    if source is None:
        checkpoint = empty_checkpoint()
    else:
        step = int(source.metadata.get("step", -1))
        checkpoint = create_checkpoint(copy_checkpoint(source.checkpoint), None, step)
        metadata["step"] = step + 1
        kept = ("counters_since_delta_snapshot",)
        metadata.update({k: v for k, v in source.metadata.items() if k in kept})
    if op.checkpoint_ns:
        metadata["parents"] = {"": op.root_id}
    metadata["lgrb_restore"] = dict(op.mark)
    return checkpoint, cast(CheckpointMetadata, metadata)


def _fault_points(op: StorageOp[Any]) -> tuple[FaultPoint | None, FaultPoint | None]:
    """The fault points around a storage operation."""
    if isinstance(op, CopyCheckpoint) and not op.checkpoint_ns:
        return FaultPoint.BEFORE_RESTORE, FaultPoint.AFTER_RESTORE
    if isinstance(op, (Begin, BeginIfNewKey)):
        return FaultPoint.BEFORE_INTENT, FaultPoint.AFTER_INTENT
    if isinstance(op, Update):
        status = op.changes.get("status")
        if status == "compensating" and "undo_attempts" in op.changes:
            return FaultPoint.BEFORE_CLAIM, FaultPoint.AFTER_CLAIM
        if status == "applied":
            return None, FaultPoint.AFTER_OUTCOME
    return None, None


_NO_POINTS: tuple[FaultPoint | None, FaultPoint | None] = (None, None)


def _liveness_of(op: StorageOp[Any]) -> AbstractContextManager[None]:
    """Keep this process's record of the rollback locks it holds.

    A lock's holder counts as live from before its row can be seen (so no
    other saver in this process takes it for a dead one's) until its release.
    """
    if isinstance(op, (LockThread, UnlockThread)):
        return _lock_liveness(op)
    return _NO_LIVENESS


_NO_LIVENESS = nullcontext()
"""Every other operation's (a `nullcontext` may be entered again and again)."""


@contextmanager
def _lock_liveness(op: LockThread | UnlockThread) -> Iterator[None]:
    if isinstance(op, LockThread):
        mark_held(op.holder)
        try:
            yield
        except BaseException:
            mark_released(op.holder)
            raise
    elif op.holder is not None:
        try:
            yield
        finally:
            mark_released(op.holder)
    else:
        yield


def _row_id(op: StorageOp[Any]) -> str | None:
    return op.row.effect_id if isinstance(op, (Begin, BeginIfNewKey)) else None


def _list_flow(query: EffectQuery, saver: BaseRollbackSaver) -> Flow[list[Effect]]:
    rows = yield from do(Select(query))
    return [effect_from_row(row, saver.ledger_codec) for row in rows]


def _get_flow(thread_id: str, effect_id: str, saver: BaseRollbackSaver) -> Flow[Effect]:
    query = EffectQuery(thread_id=thread_id, effect_id=effect_id)
    rows = yield from do(Select(query))
    if not rows:
        raise EffectNotFoundError(effect_id=effect_id, thread_id=thread_id)
    return effect_from_row(rows[0], saver.ledger_codec)


def mark_restored_copy(metadata: CheckpointMetadata) -> CheckpointMetadata:
    """Tag a checkpoint written by a rollback's restore as a copy of its target.

    LangGraph's `update_state(..., as_node="__copy__")` writes the copy with
    `source="fork"` and the target's *parent* as parent, so the target is no
    longer on the new head's ancestry; the tag (`lgrb_restore.copy_of`) lets
    later rollbacks treat the copy as the target. It is written in the same
    `put` as the checkpoint itself, so a crash cannot separate them.
    """
    mark = restore_mark()
    if mark is None or metadata.get("source") != "fork":
        return metadata
    tagged: dict[str, Any] = dict(metadata)
    tagged["lgrb_restore"] = dict(mark)
    return cast(CheckpointMetadata, tagged)
