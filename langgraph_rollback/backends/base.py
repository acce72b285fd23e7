"""What every rollback saver adds to a LangGraph checkpointer.

`BaseRollbackSaver` is mixed into a subclass of one of LangGraph's own savers
(`InMemorySaver`, `SqliteSaver`, ...). Checkpoint storage stays upstream's;
the mixin adds the side-effect ledger's public API (`list_effects`,
`resolve_effect` and their async twins) on top of storage primitives that
each backend implements with its own I/O, one per storage operation in
`_ops` (`_ledger_begin`, `_ledger_update`, `_ledger_select`, `_ledger_head`,
`_ledger_find_checkpoint`, `_ledger_ancestry`, `_ledger_subtree`,
`_ledger_existing`, `_ledger_save_rollback`), plus the per-thread rollback
lock (`_lock_thread`, `_unlock_thread`). Each has an `_a`-prefixed async twin.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import threading
import uuid
from abc import ABC, abstractmethod
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Generator,
    Iterator,
    Sequence,
)
from dataclasses import dataclass, field
from itertools import islice
from typing import Any, TypeVar, cast

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
)
from langgraph.checkpoint.serde.base import SerializerProtocol

from langgraph_rollback._context import restore_mark
from langgraph_rollback._drivers import run_async, run_sync
from langgraph_rollback._errors import (
    EffectNotFoundError,
    InvalidConfigError,
    RollbackInProgressError,
)
from langgraph_rollback._ledger import (
    EffectQuery,
    LedgerRow,
    effect_from_row,
)
from langgraph_rollback._models import Effect, EffectStatus
from langgraph_rollback._ops import (
    Begin,
    CheckpointLink,
    ExistingCheckpoints,
    FindCheckpoint,
    ReadAncestry,
    ReadCheckpoint,
    ReadHead,
    ReadSubtree,
    SaveRollback,
    Select,
    Update,
)
from langgraph_rollback._record import GUARD_MODES, GuardMode, resolve_flow
from langgraph_rollback._registry import ToolRegistry, default_registry

__all__ = [
    "LIFECYCLE",
    "PRUNE_STRATEGIES",
    "BaseRollbackSaver",
    "LockHolder",
    "SyncBackedAsync",
    "SyncOverAsync",
    "mark_restored_copy",
    "reanchor",
]

T = TypeVar("T")

logger = logging.getLogger(__name__)

CARRY_ATTEMPTS = 5
"""Failed writes after which a kept tool outcome is dropped (see `_carry`)."""

CARRY_READ_FAILED = (
    "could not commit kept tool outcomes (%s): they stay in memory and travel "
    "with this saver's next write; until then other processes see those "
    "effects as pending"
)


def host_id() -> str:
    """This process's host, as far as process ids are comparable.

    Hostname plus the pid namespace and boot id: two containers sharing a
    hostname (host networking) but not a pid namespace count as two hosts.
    """
    parts = [socket.gethostname()]
    try:
        parts.append(os.readlink("/proc/self/ns/pid"))
    except OSError:
        parts.append("")
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as fh:
            parts.append(fh.read().strip()[:8])
    except OSError:
        parts.append("")
    return "|".join(parts)


_HOST = host_id()
_LIVE_TOKENS: set[str] = set()
"""Tokens of the rollbacks that hold a lock in this process right now."""


@dataclass(frozen=True)
class LockHolder:
    """Who holds a thread's rollback lock: this process, and a token per rollback."""

    token: str = field(default_factory=lambda: uuid.uuid4().hex)
    host: str = field(default=_HOST)
    pid: int = field(default_factory=os.getpid)

    def __str__(self) -> str:
        return f"{self.host.split('|')[0]}:{self.pid}:{self.token[:8]}"

    def held(self) -> None:
        """Note that this process now holds the lock."""
        _LIVE_TOKENS.add(self.token)

    def released(self) -> None:
        """Note that this process no longer holds the lock."""
        _LIVE_TOKENS.discard(self.token)


def holder_alive(host: str, pid: int, token: str) -> bool:
    """Whether a lock holder may still be running its rollback.

    On this host (same pid namespace): a holder with this process's pid is
    alive only if its token is one this process holds (a restarted process
    can reuse a pid, e.g. PID 1 in a container); another pid is alive while
    that process exists. Holders on other hosts are assumed alive, since only
    their host can tell: `release_rollback_lock` clears one that died.
    """
    if host != _HOST:
        return True
    if pid == os.getpid():
        return token in _LIVE_TOKENS
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


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
    tagged = dict(metadata)
    tagged["lgrb_restore"] = dict(mark)
    return tagged  # type: ignore[return-value]


PRUNE_STRATEGIES = ("keep_latest", "delete")

LIFECYCLE = """
What thread deletion, copying and pruning do to the ledger: nothing is
dropped. The ledger records actions in the outside world, which deleting
checkpoints does not undo, so its rows stay (`list_effects` still lists
them; undo what you need before deleting):

- `delete_thread(t)`, `delete_for_runs(runs)`, `prune(threads, ...)` delete
  checkpoints and writes only.
- `delete_for_runs` also moves the anchor (`base_checkpoint_id`) of each
  effect whose checkpoints it deletes to the nearest remaining ancestor, in
  the same transaction: a rollback to that checkpoint still undoes them.
  Effects whose checkpoints are gone are placed by that anchor, like those
  of a run whose checkpoints were never stored; so deleting an abandoned
  fork's run places its effects at the fork point, where a rollback to (or
  before) it undoes them, while before the deletion they were orphans, left
  alone.
- `copy_thread(src, dst)` copies checkpoints and writes; the effects stay with
  `src`, where they happened (undo them there). Resuming the copy replays
  the source's recorded calls (effect ids do not include the thread), so it
  repeats none of them.
- `prune(..., strategy="keep_latest")` keeps each namespace's latest
  checkpoint with its pending writes and no parent, so the thread can be
  rolled back only to it afterwards; it refuses threads that use a
  `DeltaChannel` (`NotImplementedError`), as upstream's Postgres saver does.
"""


def prune_args(thread_ids: Sequence[str], strategy: str) -> list[str]:
    """Validate `prune`'s arguments; return the thread ids as strings.

    Raises:
        InvalidConfigError: `thread_ids` is one string, or `strategy` is unknown.
    """
    if isinstance(thread_ids, str):
        raise InvalidConfigError(
            f"prune(thread_ids={thread_ids!r}) got one string. Fix: pass a list "
            f"of thread ids, e.g. prune([{thread_ids!r}])."
        )
    if strategy not in PRUNE_STRATEGIES:
        raise InvalidConfigError(
            f"Unknown prune strategy {strategy!r}. Fix: use 'keep_latest' or 'delete'."
        )
    return [str(t) for t in thread_ids]


def reanchor(
    deleted: dict[tuple[str, str], str | None], bases: list[tuple[str, str, str]]
) -> list[tuple[str, str | None]]:
    """New anchors for effects whose base checkpoint is being deleted.

    Args:
        deleted: `(thread_id, checkpoint_id) -> parent id` of the root
            checkpoints being deleted.
        bases: `(effect_id, thread_id, base_checkpoint_id)` of the effects
            whose base is among them.

    Returns:
        `(effect_id, new_base)`: the nearest ancestor not being deleted (None
        when none remains).
    """
    moved = []
    for effect_id, thread_id, base in bases:
        current: str | None = base
        seen: set[str] = set()
        while current is not None and (thread_id, current) in deleted:
            if current in seen:  # pragma: no cover - a cycle cannot be written
                current = None
                break
            seen.add(current)
            current = deleted[(thread_id, current)]
        moved.append((effect_id, current))
    return moved


def refuse_if_locked(thread_id: str, lock_row: Any) -> None:
    """Refuse an intent while a live rollback holds its thread.

    A run that races a rollback of its own thread fails at its next declared
    tool call, before acting: the rollback's plan could not include the call.

    Args:
        lock_row: `(holder, host, pid)` from the lock table, or None.
    """
    if lock_row is not None and holder_alive(
        lock_row[1], int(lock_row[2]), lock_row[0]
    ):
        raise RollbackInProgressError(
            thread_id=thread_id,
            holder=f"{lock_row[1].split('|')[0]}:{lock_row[2]}:{lock_row[0][:8]}",
        )


def refuse_delta(threads: Sequence[str]) -> None:
    """Raise `NotImplementedError` when keep_latest meets `DeltaChannel` threads."""
    if threads:
        raise NotImplementedError(
            "keep_latest can't prune threads that use a DeltaChannel (their latest "
            f"values are rebuilt from older checkpoints): {', '.join(sorted(threads))}"
        )


class BaseRollbackSaver(ABC):
    """The ledger half of a rollback saver; see the module docstring."""

    serde: SerializerProtocol
    registry: ToolRegistry = default_registry
    """Where rollbacks through this saver find inverses by tool name."""
    guard: GuardMode = "allow"
    """What happens when an irreversible tool is called: "allow" it, "ask" a
    human first (`interrupt()`), or "block" it. A graph or run can override
    it with `configurable.rollback_guard`."""

    def _init_rollback(
        self, registry: ToolRegistry | None, guard: GuardMode | None
    ) -> None:
        if registry is not None:
            self.registry = registry
        if guard is not None:
            if guard not in GUARD_MODES:
                raise InvalidConfigError(
                    f"guard={guard!r} is not a guard policy. Fix: use "
                    '"allow", "ask" or "block".'
                )
            self.guard = guard
        self._carried: list[Update] = []
        self._carried_failures: dict[str, int] = {}
        self._carried_lock = threading.Lock()

    # --- outcomes that travel with the next write -------------------------------
    #
    # The result of a model's tool call (`Update.with_next_write`: a call with
    # a `tool_call_id`, under durability "sync" or "async") need not cost a
    # commit of its own: LangGraph saves the task's pending writes right after
    # the task, and a failed or interrupted task still saves an ERROR or
    # INTERRUPT write. A backend that commits to disk keeps the outcome here
    # and writes it first in the transaction of its next write, whichever that
    # is: those pending writes, the next intent (so a retry of the call in the
    # same process finds it applied), a checkpoint. Before a read it commits
    # what is kept, so nothing this process knows is read stale. Each backend
    # takes them only once it holds its own lock, so no other statement of
    # this saver runs between taking them and committing them.
    #
    # A crash before that write leaves the intent `pending`: the outcome is
    # unknown and is reconciled like any other (DESIGN.md section 3, point 3).
    # A write that fails raises its error and keeps what it carried for the
    # next write, so a failed step cannot move on without them; after
    # `CARRY_ATTEMPTS` failed writes an outcome is dropped (logged), so one
    # that can never be written does not fail every later write: its intent
    # stays `pending`, as after a crash. A read whose commit of them fails
    # reads what is on disk and keeps them.

    def _carry(self, op: Update) -> bool:
        """Keep `op` for the next write when it may travel with one."""
        if not op.with_next_write:
            return False
        with self._carried_lock:
            self._carried.append(op)
        return True

    def _take_carried(self) -> list[Update]:
        """The kept outcomes, now owned by the caller's transaction."""
        if not self._carried:
            return []
        with self._carried_lock:
            taken, self._carried = self._carried, []
        return taken

    def _put_back_carried(self, taken: list[Update], *, write: bool = True) -> None:
        """The transaction that took `taken` did not commit: keep them again.

        `write=False`: it was a read's commit of them, which does not count
        towards `CARRY_ATTEMPTS`.
        """
        if not taken:
            return
        kept: list[Update] = []
        with self._carried_lock:
            for op in taken:
                failures = self._carried_failures.get(op.effect_id, 0) + int(write)
                if failures < CARRY_ATTEMPTS:
                    self._carried_failures[op.effect_id] = failures
                    kept.append(op)
                else:
                    self._carried_failures.pop(op.effect_id, None)
                    logger.error(
                        "dropped the outcome of effect %s after %d failed writes: "
                        "its intent stays pending (outcome unknown). Fix: once the "
                        "database accepts writes, check the target and call "
                        "saver.resolve_effect(config, %r, applied=True or False)",
                        op.effect_id,
                        failures,
                        op.effect_id,
                    )
            self._carried[:0] = kept

    def _carried_committed(self, taken: list[Update]) -> None:
        """Called after a commit that wrote `taken`."""
        if taken and self._carried_failures:
            with self._carried_lock:
                for op in taken:
                    self._carried_failures.pop(op.effect_id, None)

    # --- storage primitives, one set per backend ------------------------------

    @abstractmethod
    def _ledger_begin(self, op: Begin) -> tuple[LedgerRow, bool]: ...

    @abstractmethod
    def _ledger_update(self, op: Update) -> bool: ...

    @abstractmethod
    def _ledger_select(self, op: Select) -> list[LedgerRow]: ...

    @abstractmethod
    def _ledger_head(self, op: ReadHead) -> str | None: ...

    @abstractmethod
    def _ledger_find_checkpoint(self, op: FindCheckpoint) -> list[str]: ...

    @abstractmethod
    def _ledger_ancestry(self, op: ReadAncestry) -> list[CheckpointLink]: ...

    @abstractmethod
    def _ledger_subtree(self, op: ReadSubtree) -> list[CheckpointLink]: ...

    @abstractmethod
    def _ledger_existing(self, op: ExistingCheckpoints) -> set[str]: ...

    @abstractmethod
    def _ledger_save_rollback(self, op: SaveRollback) -> None: ...

    @abstractmethod
    def _lock_thread(self, thread_id: str, holder: LockHolder) -> None:
        """Take the thread's rollback lock or raise `RollbackInProgressError`."""

    @abstractmethod
    def _unlock_thread(self, thread_id: str, holder: LockHolder | None) -> None:
        """Release the lock `holder` holds; with None, whoever holds it."""

    @abstractmethod
    async def _aledger_begin(self, op: Begin) -> tuple[LedgerRow, bool]: ...

    @abstractmethod
    async def _aledger_update(self, op: Update) -> bool: ...

    @abstractmethod
    async def _aledger_select(self, op: Select) -> list[LedgerRow]: ...

    @abstractmethod
    async def _aledger_head(self, op: ReadHead) -> str | None: ...

    @abstractmethod
    async def _aledger_find_checkpoint(self, op: FindCheckpoint) -> list[str]: ...

    @abstractmethod
    async def _aledger_ancestry(self, op: ReadAncestry) -> list[CheckpointLink]: ...

    @abstractmethod
    async def _aledger_subtree(self, op: ReadSubtree) -> list[CheckpointLink]: ...

    @abstractmethod
    async def _aledger_existing(self, op: ExistingCheckpoints) -> set[str]: ...

    @abstractmethod
    async def _aledger_save_rollback(self, op: SaveRollback) -> None: ...

    @abstractmethod
    async def _alock_thread(self, thread_id: str, holder: LockHolder) -> None: ...

    @abstractmethod
    async def _aunlock_thread(
        self, thread_id: str, holder: LockHolder | None
    ) -> None: ...

    def _ledger_checkpoint(self, op: ReadCheckpoint) -> CheckpointTuple | None:
        return self.get_tuple(op.config)  # type: ignore[attr-defined,no-any-return]

    async def _aledger_checkpoint(self, op: ReadCheckpoint) -> CheckpointTuple | None:
        return await self.aget_tuple(op.config)  # type: ignore[attr-defined,no-any-return]

    # --- public API -----------------------------------------------------------

    def list_effects(
        self,
        config: RunnableConfig,
        *,
        status: EffectStatus | str | list[EffectStatus | str] | None = None,
        tool: str | None = None,
        before: int | None = None,
        limit: int | None = None,
    ) -> list[Effect]:
        """The effects recorded on a thread, newest first (by `seq`).

        Args:
            config: Names the thread (`configurable.thread_id`). With a
                `checkpoint_id`, only effects of tasks that started from that
                checkpoint (for the root namespace: every task whose root
                checkpoint it is, subgraph tasks included).
            status: Only effects in this status (or these statuses).
            tool: Only effects of this tool.
            before: Only effects with `seq` lower than this (for paging).
            limit: At most this many effects.

        Example:
            ```python
            for effect in saver.list_effects({"configurable": {"thread_id": "1"}}):
                print(effect.seq, effect.tool, effect.status.value, effect.args)
            ```
        """
        query = _query(config, status=status, tool=tool, before=before, limit=limit)
        rows = self._ledger_select(Select(query))
        return [effect_from_row(row, self.serde) for row in rows]

    async def alist_effects(
        self,
        config: RunnableConfig,
        *,
        status: EffectStatus | str | list[EffectStatus | str] | None = None,
        tool: str | None = None,
        before: int | None = None,
        limit: int | None = None,
    ) -> list[Effect]:
        """Async `list_effects`."""
        query = _query(config, status=status, tool=tool, before=before, limit=limit)
        rows = await self._aledger_select(Select(query))
        return [effect_from_row(row, self.serde) for row in rows]

    def get_effect(self, config: RunnableConfig, effect_id: str) -> Effect:
        """One effect of the thread `config` names.

        Raises:
            EffectNotFoundError: No such effect on that thread.
        """
        query = EffectQuery(thread_id=_thread_id(config), effect_id=effect_id)
        rows = self._ledger_select(Select(query))
        if not rows:
            raise EffectNotFoundError(effect_id=effect_id, thread_id=query.thread_id)
        return effect_from_row(rows[0], self.serde)

    async def aget_effect(self, config: RunnableConfig, effect_id: str) -> Effect:
        """Async `get_effect`."""
        query = EffectQuery(thread_id=_thread_id(config), effect_id=effect_id)
        rows = await self._aledger_select(Select(query))
        if not rows:
            raise EffectNotFoundError(effect_id=effect_id, thread_id=query.thread_id)
        return effect_from_row(rows[0], self.serde)

    def release_rollback_lock(self, config: RunnableConfig) -> None:
        """Clear the thread's rollback lock, whoever holds it.

        For a rollback whose process died on another host (locks held by a
        dead process on this host are cleared automatically). The effects it
        claimed stay `compensating` until the next rollback settles them.
        """
        self._unlock_thread(thread_id_of(config), None)

    async def arelease_rollback_lock(self, config: RunnableConfig) -> None:
        """Async `release_rollback_lock`."""
        await self._aunlock_thread(thread_id_of(config), None)

    def resolve_effect(
        self,
        config: RunnableConfig,
        effect_id: str,
        *,
        applied: bool | None = None,
        compensated: bool | None = None,
        result: Any = None,
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

        Raises:
            EffectNotFoundError: No such effect on that thread.
            EffectStateError: The effect is in neither status.
            InvalidConfigError: The wrong keyword for its status.
        """
        flow = resolve_flow(
            thread_id_of(config),
            effect_id,
            applied=applied,
            compensated=compensated,
            result=result,
            registry=self.registry,
            serde=self.serde,
        )
        resolved: Effect = run_sync(flow, self)
        return resolved

    async def aresolve_effect(
        self,
        config: RunnableConfig,
        effect_id: str,
        *,
        applied: bool | None = None,
        compensated: bool | None = None,
        result: Any = None,
    ) -> Effect:
        """Async `resolve_effect`."""
        flow = resolve_flow(
            thread_id_of(config),
            effect_id,
            applied=applied,
            compensated=compensated,
            result=result,
            registry=self.registry,
            serde=self.serde,
        )
        resolved: Effect = await run_async(flow, self)
        return resolved


def thread_id_of(config: RunnableConfig) -> str:
    """The thread a config names.

    Raises:
        InvalidConfigError: It names none.
    """
    return _thread_id(config)


def _thread_id(config: RunnableConfig) -> str:
    configurable = (config or {}).get("configurable") or {}
    thread_id = configurable.get("thread_id")
    if thread_id is None:
        raise InvalidConfigError(
            "The config names no thread: `configurable.thread_id` is missing. "
            'Fix: pass {"configurable": {"thread_id": "<your thread>"}}.'
        )
    return str(thread_id)


def _query(
    config: RunnableConfig,
    *,
    status: EffectStatus | str | list[EffectStatus | str] | None,
    tool: str | None,
    before: int | None,
    limit: int | None,
) -> EffectQuery:
    configurable = (config or {}).get("configurable") or {}
    if status is None:
        statuses: tuple[str, ...] = ()
    elif isinstance(status, (str, EffectStatus)):
        statuses = (_status(status),)
    else:
        statuses = tuple(_status(s) for s in status)
    if limit is not None and (not isinstance(limit, int) or limit < 0):
        raise InvalidConfigError(
            f"limit must be a non-negative int, got {limit!r}. Fix: pass e.g. "
            "limit=50, or leave it out for every effect."
        )
    return EffectQuery(
        thread_id=_thread_id(config),
        checkpoint_ns=configurable.get("checkpoint_ns") or "",
        checkpoint_id=configurable.get("checkpoint_id"),
        statuses=statuses,
        tool=tool,
        before_seq=before,
        limit=limit,
    )


def _status(value: EffectStatus | str) -> str:
    try:
        return EffectStatus(value).value
    except ValueError:
        allowed = ", ".join(s.value for s in EffectStatus)
        raise InvalidConfigError(
            f"Unknown effect status {value!r}. Fix: use one of {allowed}."
        ) from None


class SyncOverAsync(BaseRollbackSaver):
    """The sync primitives of a saver bound to one event loop (`self.loop`).

    As upstream's async savers do, each runs its async twin on that loop and
    waits, so it works from any other thread; on the loop's own thread it
    raises, naming the `a*` method to await instead.
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

    def _ledger_begin(self, op: Begin) -> tuple[LedgerRow, bool]:
        return self._on_loop(lambda: self._aledger_begin(op))

    def _ledger_update(self, op: Update) -> bool:
        return self._on_loop(lambda: self._aledger_update(op))

    def _ledger_select(self, op: Select) -> list[LedgerRow]:
        return self._on_loop(lambda: self._aledger_select(op))

    def _ledger_head(self, op: ReadHead) -> str | None:
        return self._on_loop(lambda: self._aledger_head(op))

    def _ledger_find_checkpoint(self, op: FindCheckpoint) -> list[str]:
        return self._on_loop(lambda: self._aledger_find_checkpoint(op))

    def _ledger_ancestry(self, op: ReadAncestry) -> list[CheckpointLink]:
        return self._on_loop(lambda: self._aledger_ancestry(op))

    def _ledger_subtree(self, op: ReadSubtree) -> list[CheckpointLink]:
        return self._on_loop(lambda: self._aledger_subtree(op))

    def _ledger_existing(self, op: ExistingCheckpoints) -> set[str]:
        return self._on_loop(lambda: self._aledger_existing(op))

    def _ledger_save_rollback(self, op: SaveRollback) -> None:
        self._on_loop(lambda: self._aledger_save_rollback(op))

    def _lock_thread(self, thread_id: str, holder: LockHolder) -> None:
        self._on_loop(lambda: self._alock_thread(thread_id, holder))

    def _unlock_thread(self, thread_id: str, holder: LockHolder | None) -> None:
        self._on_loop(lambda: self._aunlock_thread(thread_id, holder))

    def delete_for_runs(self, run_ids: Sequence[str]) -> None:
        """Sync `adelete_for_runs`, from another thread."""
        self._on_loop(lambda: self.adelete_for_runs(run_ids))  # type: ignore[attr-defined]

    def copy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        """Sync `acopy_thread`, from another thread."""
        self._on_loop(
            lambda: self.acopy_thread(source_thread_id, target_thread_id)  # type: ignore[attr-defined]
        )

    def prune(
        self, thread_ids: Sequence[str], *, strategy: str = "keep_latest"
    ) -> None:
        """Sync `aprune`, from another thread."""
        self._on_loop(lambda: self.aprune(thread_ids, strategy=strategy))  # type: ignore[attr-defined]


_LIST_BATCH = 64
"""Checkpoints fetched per thread hop by `SyncBackedAsync.alist`."""


class SyncBackedAsync(BaseRollbackSaver):
    """Async checkpoint methods and ledger primitives that run the sync ones
    in a worker thread (`asyncio.to_thread`), for savers whose upstream class
    is sync-only (`SqliteSaver`, `PostgresSaver`).

    As upstream's sync `list()` does, `alist()` holds the saver's lock between
    its batches: collect the results before writing to the saver.
    """

    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        """Async `get_tuple`, run in a worker thread."""
        result: CheckpointTuple | None = await asyncio.to_thread(
            self.get_tuple,  # type: ignore[attr-defined]
            config,
        )
        return result

    async def alist(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[CheckpointTuple]:
        """Async `list`: streams from a worker thread, a batch per hop."""
        iterator = cast(
            Generator[CheckpointTuple, None, None],
            self.list(config, filter=filter, before=before, limit=limit),  # type: ignore[attr-defined]
        )
        try:
            while True:
                batch = await asyncio.to_thread(_take, iterator, _LIST_BATCH)
                for item in batch:
                    yield item
                if len(batch) < _LIST_BATCH:
                    return
        finally:
            await asyncio.to_thread(iterator.close)

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        """Async `put`, run in a worker thread."""
        saved: RunnableConfig = await asyncio.to_thread(
            self.put,  # type: ignore[attr-defined]
            config,
            checkpoint,
            metadata,
            new_versions,
        )
        return saved

    async def aput_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        """Async `put_writes`, run in a worker thread."""
        await asyncio.to_thread(
            self.put_writes,  # type: ignore[attr-defined]
            config,
            writes,
            task_id,
            task_path,
        )

    async def adelete_thread(self, thread_id: str) -> None:
        """Async `delete_thread`, run in a worker thread."""
        await asyncio.to_thread(self.delete_thread, thread_id)  # type: ignore[attr-defined]

    async def adelete_for_runs(self, run_ids: Sequence[str]) -> None:
        """Async `delete_for_runs`, run in a worker thread."""
        await asyncio.to_thread(self.delete_for_runs, run_ids)  # type: ignore[attr-defined]

    async def acopy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        """Async `copy_thread`, run in a worker thread."""
        await asyncio.to_thread(
            self.copy_thread,  # type: ignore[attr-defined]
            source_thread_id,
            target_thread_id,
        )

    async def aprune(
        self, thread_ids: Sequence[str], *, strategy: str = "keep_latest"
    ) -> None:
        """Async `prune`, run in a worker thread."""
        await asyncio.to_thread(
            self.prune,  # type: ignore[attr-defined]
            thread_ids,
            strategy=strategy,
        )

    async def _aledger_begin(self, op: Begin) -> tuple[LedgerRow, bool]:
        return await asyncio.to_thread(self._ledger_begin, op)

    async def _aledger_update(self, op: Update) -> bool:
        return await asyncio.to_thread(self._ledger_update, op)

    async def _aledger_select(self, op: Select) -> list[LedgerRow]:
        return await asyncio.to_thread(self._ledger_select, op)

    async def _aledger_head(self, op: ReadHead) -> str | None:
        return await asyncio.to_thread(self._ledger_head, op)

    async def _aledger_find_checkpoint(self, op: FindCheckpoint) -> list[str]:
        return await asyncio.to_thread(self._ledger_find_checkpoint, op)

    async def _aledger_ancestry(self, op: ReadAncestry) -> list[CheckpointLink]:
        return await asyncio.to_thread(self._ledger_ancestry, op)

    async def _aledger_subtree(self, op: ReadSubtree) -> list[CheckpointLink]:
        return await asyncio.to_thread(self._ledger_subtree, op)

    async def _aledger_existing(self, op: ExistingCheckpoints) -> set[str]:
        return await asyncio.to_thread(self._ledger_existing, op)

    async def _aledger_save_rollback(self, op: SaveRollback) -> None:
        await asyncio.to_thread(self._ledger_save_rollback, op)

    async def _alock_thread(self, thread_id: str, holder: LockHolder) -> None:
        await asyncio.to_thread(self._lock_thread, thread_id, holder)

    async def _aunlock_thread(self, thread_id: str, holder: LockHolder | None) -> None:
        await asyncio.to_thread(self._unlock_thread, thread_id, holder)


def _take(iterator: Iterator[CheckpointTuple], n: int) -> list[CheckpointTuple]:
    return list(islice(iterator, n))
