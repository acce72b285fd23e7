"""Which ledger rows to read: one filter, the same rules in every store.

SQL stores translate an `EffectQuery` into a `WHERE` clause
(`savers.sql.where_clause`); the in-memory store applies `matches`. A test runs
both over the same rows.
"""

from __future__ import annotations

from dataclasses import dataclass

from langgraph_rollback.core.ledger import LedgerRow

__all__ = ["EffectQuery", "may_be_earlier", "rerun_candidate"]


def rerun_candidate(row: LedgerRow) -> bool:
    """Whether a call of a later task may be matched to `row` by its key
    (`core.replay.earlier_row`).

    Two kinds of rows: a subgraph's (a subgraph that starts over in its
    parent task runs its calls under new task ids), and a root graph's whose
    root checkpoint may never have been stored (a run that died before its
    checkpoints were). A row's base is its run's stored starting point or
    the thread's newest stored root checkpoint when its intent was written,
    so a row whose base is its root checkpoint was recorded after that
    checkpoint was stored: under durability "sync", every row of a root
    graph. The SQL stores index only these rows by call key.
    """
    return bool(row.checkpoint_ns) or row.base_checkpoint_id != row.root_checkpoint_id


def may_be_earlier(other: LedgerRow, row: LedgerRow) -> bool:
    """Whether `other`, an effect of `row`'s thread with its call key, may be
    an earlier record of `row`'s call: a rerun candidate of another effect.
    (The interrupted task a resumed one continues is looked for apart, see
    `core.replay.begin`.)"""
    return other.effect_id != row.effect_id and rerun_candidate(other)


@dataclass(frozen=True, slots=True)
class EffectQuery:
    """Which ledger rows to read, newest first."""

    thread_id: str
    effect_id: str | None = None
    checkpoint_ns: str | None = None
    checkpoint_id: str | None = None
    """With `checkpoint_ns` "" (or None): effects whose root checkpoint is this
    one (subgraph effects included); otherwise the effects of tasks that
    started from this checkpoint of that namespace."""
    statuses: tuple[str, ...] = ()
    tool: str | None = None
    tool_call_id: str | None = None
    call_key: str | None = None
    before_seq: int | None = None
    limit: int | None = None
    anchors: tuple[str, ...] | None = None
    """Only effects whose root or base checkpoint is one of these."""
    unanchored: bool = False
    """With `anchors`: also effects recorded before any checkpoint existed
    (no base)."""
    rerun_candidates: bool = False
    """Only the effects a later task's call may be matched to by its key
    (`rerun_candidate`)."""

    def matches(self, row: LedgerRow) -> bool:
        """Whether `row` passes the filter (`limit` aside)."""
        if row.thread_id != self.thread_id:
            return False
        if self.effect_id is not None and row.effect_id != self.effect_id:
            return False
        if self.checkpoint_id is not None:
            if self.checkpoint_ns:
                if (row.checkpoint_ns, row.checkpoint_id) != (
                    self.checkpoint_ns,
                    self.checkpoint_id,
                ):
                    return False
            elif row.root_checkpoint_id != self.checkpoint_id:
                return False
        if self.statuses and row.status not in self.statuses:
            return False
        if self.tool is not None and row.tool != self.tool:
            return False
        if self.tool_call_id is not None and row.tool_call_id != self.tool_call_id:
            return False
        if self.call_key is not None and row.call_key != self.call_key:
            return False
        if self.rerun_candidates and not rerun_candidate(row):
            return False
        if self.anchors is not None and not (
            row.root_checkpoint_id in self.anchors
            or row.base_checkpoint_id in self.anchors
            or (self.unanchored and row.base_checkpoint_id is None)
        ):
            return False
        return self.before_seq is None or row.seq < self.before_seq
