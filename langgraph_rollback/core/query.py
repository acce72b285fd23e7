"""Which ledger rows to read: one filter, the same rules in every store.

SQL stores translate an `EffectQuery` into a `WHERE` clause
(`savers.sql.where_clause`); the in-memory store applies `matches`. A test runs
both over the same rows.
"""

from __future__ import annotations

from dataclasses import dataclass

from langgraph_rollback.core.ledger import LedgerRow

__all__ = ["EffectQuery"]


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
        if self.anchors is not None and not (
            row.root_checkpoint_id in self.anchors
            or row.base_checkpoint_id in self.anchors
            or (self.unanchored and row.base_checkpoint_id is None)
        ):
            return False
        return self.before_seq is None or row.seq < self.before_seq
