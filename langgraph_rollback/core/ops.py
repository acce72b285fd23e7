"""The operations the I/O-free flows yield, and the drivers perform.

Every operation is an `Op[R]`: `R` is the type of the result the driver sends
back. Storage operations (`StorageOp[R]`) go through one door, a store's
`execute(op)` / `aexecute(op)` (`core.store`); the others run user code
(tools, observations, inverses), ask a human, or write a restored head.

A flow gets a typed result with `yield from do(op)`:

```python
stored, inserted = yield from do(Begin(row))   # tuple[LedgerRow, bool]
```
"""

from __future__ import annotations

import json
from collections.abc import Callable, Generator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeAlias, TypeVar

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import CheckpointTuple

from langgraph_rollback._models import Effect
from langgraph_rollback.core.ledger import LedgerRow
from langgraph_rollback.core.locks import LockHolder
from langgraph_rollback.core.query import EffectQuery

__all__ = [
    "UPDATABLE",
    "Ask",
    "AuditRow",
    "AwaitCall",
    "Begin",
    "BeginIfNewKey",
    "CheckpointLink",
    "CopyCheckpoint",
    "ExistingCheckpoints",
    "FindCheckpoint",
    "FindEffect",
    "FindNamespace",
    "FindRun",
    "Flow",
    "LockThread",
    "Notify",
    "Observe",
    "Op",
    "Outcome",
    "Perform",
    "ReadAncestry",
    "ReadAudit",
    "ReadCheckpoint",
    "ReadHead",
    "ReadNamespaceStates",
    "ReadSubtree",
    "ReadUpdatedFrom",
    "Restore",
    "SaveRollback",
    "Select",
    "StorageOp",
    "Undo",
    "UnlockThread",
    "Update",
    "WriteAudit",
    "do",
]

R = TypeVar("R")
T = TypeVar("T")


class Op(Generic[R]):
    """An operation whose result, sent back by a driver, is an `R`."""

    __slots__ = ()


class StorageOp(Op[R]):
    """A ledger or checkpoint read or write, performed by a store's `execute`."""

    __slots__ = ()


Flow: TypeAlias = Generator[Op[Any], Any, T]
"""A flow: yields operations, receives their results, returns a `T`."""


def do(op: Op[R]) -> Generator[Op[R], R, R]:
    """Yield `op` and return its result, typed (`x = yield from do(op)`)."""
    result = yield op
    return result


UPDATABLE = frozenset(
    {
        "status",
        "attempt",
        "intent_type",
        "intent",
        "outcome_type",
        "outcome",
        "updated_at",
        "completed_at",
        "undo_type",
        "undo",
        "undo_attempts",
        "rollback_id",
        "compensated_at",
        "owner",
    }
)
"""Ledger columns `Update` may change; anything else is refused."""


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a call returned or raised."""

    value: Any = None
    error: BaseException | None = None


@dataclass(frozen=True, slots=True)
class CheckpointLink:
    """A root-namespace checkpoint, its parent, and what it is a restored copy of.

    `copies` lists every checkpoint this one stands for: the target a rollback
    restored it from, and (transitively) whatever that target was a copy of.
    `source`, `step` and `run_id` come from its metadata (LangGraph's
    "input" / "loop" / "update" / "fork", the step number, the run that
    wrote it when the caller named one).
    """

    checkpoint_id: str
    parent_id: str | None
    copies: tuple[str, ...] = ()
    source: str | None = None
    step: int | None = None
    run_id: str | None = None

    @classmethod
    def from_row(
        cls,
        checkpoint_id: str,
        parent_id: str | None,
        copies: Any,
        source: Any = None,
        step: Any = None,
        run_id: Any = None,
    ) -> CheckpointLink:
        """From a row whose `copies` is a JSON array (text), a list, or None."""
        if isinstance(copies, str):
            copies = json.loads(copies)
        return cls(
            str(checkpoint_id),
            None if parent_id is None else str(parent_id),
            tuple(str(c) for c in copies or ()),
            None if source is None else str(source),
            None if step is None else int(step),
            None if run_id is None else str(run_id),
        )

    def stands_for(self, checkpoint_id: str) -> bool:
        """Whether this checkpoint is `checkpoint_id` or a restored copy of it."""
        return checkpoint_id == self.checkpoint_id or checkpoint_id in self.copies


# --- ledger writes and reads ---------------------------------------------------


@dataclass(frozen=True, slots=True)
class Begin(StorageOp[tuple[LedgerRow, bool]]):
    """Insert `row` unless its effect id exists, and commit.

    The store assigns `seq` and `base_checkpoint_id` (the thread's newest
    persisted root checkpoint) in the same statement, and refuses the intent
    (`RollbackInProgressError`) while a live rollback holds the thread.
    Result: `(stored_row, inserted)`, the new row as stored or the existing one.
    """

    row: LedgerRow


@dataclass(frozen=True, slots=True)
class BeginIfNewKey(StorageOp[tuple[LedgerRow, bool] | None]):
    """`Begin`, unless another effect of the thread with `row`'s call key may
    be an earlier record of the call (`core.query.may_be_earlier`).

    The common case in one round trip: a call no such effect shares its key
    with cannot be an earlier run's call (`core.replay.earlier_row`), so its
    intent is written at once. Result: `Begin`'s, or None when such an
    effect exists (nothing written; the flow looks further).
    """

    row: LedgerRow


@dataclass(frozen=True, slots=True)
class Update(StorageOp[bool]):
    """Set `changes` on one effect if its status is in `expect`; commit.

    Result: whether a row changed.
    """

    effect_id: str
    changes: Mapping[str, Any] = field(default_factory=dict)
    expect: tuple[str, ...] = ()
    expect_attempt: int | None = None
    """Also require this `attempt` (so two resumers cannot both restart a call)."""
    with_next_write: bool = False
    """The outcome of a model's tool call: a store that commits to disk may
    keep it and write it in the transaction of its next write (normally the
    task's pending writes, which LangGraph saves right after the task),
    instead of in a commit of its own. The result is then True."""
    starts_call: bool = False
    """The update starts the call again (a new attempt, this flow to perform
    it): the driver marks the call in flight before the write commits, as for
    an intent, and keeps the mark only if a row changed."""

    def __post_init__(self) -> None:
        unknown = set(self.changes) - UPDATABLE
        if unknown:
            raise ValueError(f"not updatable ledger columns: {sorted(unknown)}")


@dataclass(frozen=True, slots=True)
class Select(StorageOp[list[LedgerRow]]):
    """Rows matching `query`, newest first."""

    query: EffectQuery


@dataclass(frozen=True, slots=True)
class SaveRollback(StorageOp[None]):
    """Insert or update the record of one rollback."""

    record: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class LockThread(StorageOp[None]):
    """Take the thread's rollback lock for `holder`, or raise
    `RollbackInProgressError` naming the live holder.

    A lock left by a holder that is no longer running is taken over.
    """

    thread_id: str
    holder: LockHolder


@dataclass(frozen=True, slots=True)
class UnlockThread(StorageOp[None]):
    """Release the thread's rollback lock held by `holder` (None: whoever holds it)."""

    thread_id: str
    holder: LockHolder | None


@dataclass(frozen=True, slots=True)
class AuditRow:
    """One stored human decision: `entry` is `AuditEntry`'s JSON text."""

    audit_id: str
    thread_id: str
    at: str
    entry: str


@dataclass(frozen=True, slots=True)
class WriteAudit(StorageOp[None]):
    """Keep a human decision; one already kept under that id stays as it is
    (a decision replayed on resume is kept once)."""

    row: AuditRow


@dataclass(frozen=True, slots=True)
class ReadAudit(StorageOp[list[AuditRow]]):
    """A thread's decisions, newest first (at most `limit`)."""

    thread_id: str
    limit: int | None = None


# --- checkpoint graph reads ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ReadHead(StorageOp[str | None]):
    """The thread's newest root checkpoint id, or None."""

    thread_id: str


@dataclass(frozen=True, slots=True)
class FindCheckpoint(StorageOp[list[str]]):
    """The threads holding a root checkpoint with this id."""

    checkpoint_id: str


@dataclass(frozen=True, slots=True)
class FindNamespace(StorageOp[list[str]]):
    """The subgraph namespaces of the thread holding a checkpoint with this id."""

    thread_id: str
    checkpoint_id: str


@dataclass(frozen=True, slots=True)
class FindEffect(StorageOp[str | None]):
    """The thread of the effect with this id (effect ids are unique across
    threads), or None."""

    effect_id: str


@dataclass(frozen=True, slots=True)
class FindRun(StorageOp[list[str]]):
    """The threads with effects recorded in run `run_id` (sorted), read from
    the ledger: a run may have stored no checkpoint (durability "exit")."""

    run_id: str


@dataclass(frozen=True, slots=True)
class ReadAncestry(StorageOp[list[CheckpointLink]]):
    """Links from `start` up its parents, stopping after `stop` or a copy of it.

    A checkpoint counts as a copy of `stop` when `stop` is in its `copies`.
    Result: `start` first; it ends at the root when `stop` is not an ancestor.
    """

    thread_id: str
    start: str
    stop: str


@dataclass(frozen=True, slots=True)
class ReadSubtree(StorageOp[list[CheckpointLink]]):
    """`root` and every root-namespace checkpoint descending from it."""

    thread_id: str
    root: str


@dataclass(frozen=True, slots=True)
class ReadUpdatedFrom(StorageOp[str | None]):
    """What a checkpoint written by `update_state` was written on.

    Result: when `checkpoint_id` is an "update" checkpoint (a human's edit),
    the nearest ancestor that is not one (walking through several edits);
    None when it is not an "update" checkpoint.
    """

    thread_id: str
    checkpoint_id: str


@dataclass(frozen=True, slots=True)
class ReadNamespaceStates(StorageOp[list[tuple[str, str, str | None]]]):
    """The thread's persistent subgraph namespaces (subgraphs compiled with
    `checkpointer=True`, whose state lasts from run to run), each with its
    newest checkpoint and the newest one written under a root checkpoint
    in `before`.

    Result: `(checkpoint_ns, head_id, state_id or None)` per namespace.
    """

    thread_id: str
    before: Sequence[str]


@dataclass(frozen=True, slots=True)
class CopyCheckpoint(StorageOp[RunnableConfig]):
    """Write a new head of `checkpoint_ns` that copies checkpoint `source_id`
    of that namespace (None: an empty state), as a rollback's restore.

    `parent_id` is the namespace's head the copy goes on; `root_id` the root
    checkpoint it belongs to; `mark` is stored in its metadata.
    """

    thread_id: str
    checkpoint_ns: str
    source_id: str | None
    parent_id: str | None
    root_id: str
    mark: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class ReadCheckpoint(StorageOp[CheckpointTuple | None]):
    """A whole checkpoint tuple (`get_tuple`)."""

    config: RunnableConfig


@dataclass(frozen=True, slots=True)
class ExistingCheckpoints(StorageOp[set[str]]):
    """Which of `checkpoint_ids` exist in the thread's root namespace."""

    thread_id: str
    checkpoint_ids: Sequence[str]


# --- user code and LangGraph -------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Notify(Op[None]):
    """Tell the caller's `progress` callback that an effect was undone
    (`ok`) or failed (its inverse failed, or could not be started). Yielded
    only after any outcome is recorded, so a callback that raises cannot
    leave an inverse that ran unrecorded."""

    effect: Effect
    ok: bool


@dataclass(frozen=True, slots=True)
class Observe(Op[Outcome]):
    """Call `fn(**kwargs)`, with `effect` as the current effect."""

    fn: Callable[..., Any]
    kwargs: Mapping[str, Any]
    effect: Effect | None = None


@dataclass(frozen=True, slots=True)
class Perform(Op[Outcome]):
    """Run the forward call of the effect `effect_id`, the current effect;
    `effect()` builds its model, which the driver asks for only when the
    call does (`current_effect()`)."""

    effect_id: str
    effect: Callable[[], Effect]


@dataclass(frozen=True, slots=True)
class AwaitCall(Op[str]):
    """Whether an earlier attempt of a call is still being performed.

    The driver knows the calls in flight in this process, and waits up to
    `timeout` seconds for one to finish; `owner` (host, pid, start time)
    names the process that wrote the intent. Result: "finished" (it was in
    flight here and has ended), "running" (still in flight, here or in a
    live process of this host), "elsewhere" (its owner is a process on
    another host, whose liveness cannot be told from here) or "gone"
    (nobody is performing it: it ended without an
    outcome, or its process died).
    """

    effect_id: str
    owner: str | None
    timeout: float


@dataclass(frozen=True, slots=True)
class Ask(Op[Any]):
    """Ask a human through LangGraph's `interrupt(payload)`; the result is the answer."""

    payload: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Undo(Op[Outcome]):
    """Run an effect's inverse.

    `fn` is a callable taking the `Effect`, or a LangChain tool invoked with
    `args`.
    """

    effect: Effect
    fn: Any
    args: Mapping[str, Any] | None = None
    timeout: float | None = None
    late: Callable[[Outcome], Update] | None = None
    """When the inverse outlives its timeout: the update that records its
    outcome once it ends, for the driver to write then."""


@dataclass(frozen=True, slots=True)
class Restore(Op[RunnableConfig]):
    """Write a new head checkpoint that copies `config`'s checkpoint.

    Result: the new checkpoint's config. `mark` is stored in the new
    checkpoint's metadata so the copy is recognised later.
    """

    config: RunnableConfig
    mark: Mapping[str, Any]
