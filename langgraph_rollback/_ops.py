"""The operations the I/O-free flows yield, and the drivers perform.

Storage operations name the saver primitive that performs them (`method`;
the async driver calls `_a` + the same name), so a backend is exactly the set
of primitives below, each in a sync and an async flavour. The other
operations run user code (tools, observations, inverses) or LangGraph calls.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from langchain_core.runnables import RunnableConfig

    from langgraph_rollback._ledger import EffectQuery, LedgerRow
    from langgraph_rollback._models import Effect

__all__ = [
    "UPDATABLE",
    "Ask",
    "Begin",
    "CheckpointLink",
    "ExistingCheckpoints",
    "FindCheckpoint",
    "Observe",
    "Outcome",
    "Perform",
    "ReadAncestry",
    "ReadCheckpoint",
    "ReadHead",
    "ReadSubtree",
    "Restore",
    "SaveRollback",
    "Select",
    "StorageOp",
    "Undo",
    "Update",
]

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
    """

    checkpoint_id: str
    parent_id: str | None
    copies: tuple[str, ...] = ()

    @classmethod
    def from_row(
        cls, checkpoint_id: str, parent_id: str | None, copies: Any
    ) -> CheckpointLink:
        """From a row whose `copies` is a JSON array (text), a list, or None."""
        if isinstance(copies, str):
            copies = json.loads(copies)
        return cls(checkpoint_id, parent_id, tuple(str(c) for c in copies or ()))

    def stands_for(self, checkpoint_id: str) -> bool:
        """Whether this checkpoint is `checkpoint_id` or a restored copy of it."""
        return checkpoint_id == self.checkpoint_id or checkpoint_id in self.copies


class StorageOp:
    """A ledger or checkpoint read/write performed by a saver primitive."""

    __slots__ = ()
    method: ClassVar[str]


# --- ledger writes and reads ---------------------------------------------------


@dataclass(frozen=True, slots=True)
class Begin(StorageOp):
    """Insert `row` unless its effect id exists, and commit.

    The backend assigns `seq` and `base_checkpoint_id` (the thread's newest
    persisted root checkpoint) in the same statement. Result:
    `(stored_row, inserted)`, the new row as stored or the existing one.
    """

    method: ClassVar[str] = "_ledger_begin"
    row: LedgerRow


@dataclass(frozen=True, slots=True)
class Update(StorageOp):
    """Set `changes` on one effect if its status is in `expect`; commit.

    Result: whether a row changed.
    """

    method: ClassVar[str] = "_ledger_update"
    effect_id: str
    changes: Mapping[str, Any] = field(default_factory=dict)
    expect: tuple[str, ...] = ()
    expect_attempt: int | None = None
    """Also require this `attempt` (so two resumers cannot both restart a call)."""
    with_next_write: bool = False
    """The outcome of a model's tool call: a backend that commits to disk may
    keep it and write it in the transaction of its next write (normally the
    task's pending writes, which LangGraph saves right after the task),
    instead of in a commit of its own. The result is then True."""

    def __post_init__(self) -> None:
        unknown = set(self.changes) - UPDATABLE
        if unknown:
            raise ValueError(f"not updatable ledger columns: {sorted(unknown)}")


@dataclass(frozen=True, slots=True)
class Select(StorageOp):
    """Rows matching `query`, newest first. Result: `list[LedgerRow]`."""

    method: ClassVar[str] = "_ledger_select"
    query: EffectQuery


@dataclass(frozen=True, slots=True)
class SaveRollback(StorageOp):
    """Insert or update the record of one rollback. Result: None."""

    method: ClassVar[str] = "_ledger_save_rollback"
    record: Mapping[str, Any]


# --- checkpoint graph reads ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ReadHead(StorageOp):
    """The thread's newest root checkpoint id, or None. Result: `str | None`."""

    method: ClassVar[str] = "_ledger_head"
    thread_id: str


@dataclass(frozen=True, slots=True)
class FindCheckpoint(StorageOp):
    """The threads holding a root checkpoint with this id. Result: `list[str]`."""

    method: ClassVar[str] = "_ledger_find_checkpoint"
    checkpoint_id: str


@dataclass(frozen=True, slots=True)
class ReadAncestry(StorageOp):
    """Links from `start` up its parents, stopping after `stop` or a copy of it.

    A checkpoint counts as a copy of `stop` when `stop` is in its `copies`.

    Result: `list[CheckpointLink]`, `start` first; it ends at the root when
    `stop` is not an ancestor.
    """

    method: ClassVar[str] = "_ledger_ancestry"
    thread_id: str
    start: str
    stop: str


@dataclass(frozen=True, slots=True)
class ReadSubtree(StorageOp):
    """`root` and every root-namespace checkpoint descending from it.

    Result: `list[CheckpointLink]`.
    """

    method: ClassVar[str] = "_ledger_subtree"
    thread_id: str
    root: str


@dataclass(frozen=True, slots=True)
class ReadCheckpoint(StorageOp):
    """A whole checkpoint tuple (`get_tuple`). Result: `CheckpointTuple | None`."""

    method: ClassVar[str] = "_ledger_checkpoint"
    config: RunnableConfig


@dataclass(frozen=True, slots=True)
class ExistingCheckpoints(StorageOp):
    """Which of `checkpoint_ids` exist in the thread's root namespace.

    Result: `set[str]`.
    """

    method: ClassVar[str] = "_ledger_existing"
    thread_id: str
    checkpoint_ids: Sequence[str]


# --- user code and LangGraph -------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Observe:
    """Call `fn(**kwargs)`, with `effect` as the current effect. Result: `Outcome`."""

    fn: Callable[..., Any]
    kwargs: Mapping[str, Any]
    effect: Effect | None = None


@dataclass(frozen=True, slots=True)
class Perform:
    """Run the forward call with `effect` as the current effect. Result: `Outcome`."""

    effect: Effect


@dataclass(frozen=True, slots=True)
class Ask:
    """Ask a human through LangGraph's `interrupt(payload)`. Result: the answer."""

    payload: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Undo:
    """Run an effect's inverse. Result: an `Outcome`.

    `fn` is a callable taking the `Effect`, or a LangChain tool invoked with
    `args`.
    """

    effect: Effect
    fn: Any
    args: Mapping[str, Any] | None = None
    timeout: float | None = None


@dataclass(frozen=True, slots=True)
class Restore:
    """Write a new head checkpoint that copies `config`'s checkpoint.

    Result: the new checkpoint's config. `mark` is stored in the new
    checkpoint's metadata so the copy is recognised later.
    """

    config: RunnableConfig
    mark: Mapping[str, Any]
