"""Tool outcomes that travel with a saver's next write: the one transaction path.

The result of a model's tool call (`Update.with_next_write`: a call with a
`tool_call_id`, under durability "sync" or "async") need not cost a commit of
its own: LangGraph saves the task's pending writes right after the task, and
a failed or interrupted task still saves an ERROR or INTERRUPT write. A store
that commits to disk keeps the outcome here and writes it first in the
transaction of its next write, whichever that is: those pending writes, the
next intent (so a retry of the call in the same process finds it applied), a
checkpoint. Before a read it commits what is kept, so nothing this process
knows is read stale.

Every SQL store opens its transactions through `KeptOutcomes.carrying()`:
take what is kept, write it in the open transaction, and, when the
transaction does not commit, keep it again. Each store takes them only once
it holds its own lock, so no other statement of the saver runs between taking
them and committing them. The probe hears `AFTER_OUTCOME` of them only once
that lock is released (`KeptOutcomes.reporting()` around it), so a probe may
read the ledger through the saver (a crash drill checking the row) without
waiting on a lock its own thread holds.

A crash before that write leaves the intent `pending`: the outcome is unknown
and is reconciled like any other (DESIGN.md section 3, point 3). A write that
fails raises its error and keeps what it carried for the next write, so a
failed step cannot move on without them; after `CARRY_ATTEMPTS` failed writes
an outcome is dropped (logged), so one that can never be written does not
fail every later write: its intent stays `pending`, as after a crash. A read
whose commit of them fails reads what is on disk and keeps them.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

from langgraph_rollback.core.ops import StorageOp, Update
from langgraph_rollback.core.store import FaultPoint, Probe

__all__ = ["CARRY_ATTEMPTS", "CARRY_READ_FAILED", "KeptOutcomes"]

logger = logging.getLogger(__name__)

CARRY_ATTEMPTS = 5
"""Failed writes after which a kept tool outcome is dropped."""

CARRY_READ_FAILED = (
    "could not commit kept tool outcomes (%s): they stay in memory and travel "
    "with this saver's next write; until then other processes see those "
    "effects as pending"
)


class KeptOutcomes:
    """The outcomes a store keeps for its next write.

    Args:
        enabled: Whether the store keeps outcomes at all (an in-memory store
            has no commit to save, so it writes them at once).
        probe: Returns the store's probe, told `AFTER_OUTCOME` when a kept
            outcome has committed and the store's lock is released.
    """

    def __init__(self, *, enabled: bool, probe: Callable[[], Probe | None]) -> None:
        self.enabled = enabled
        self._probe = probe
        self._ops: list[Update] = []
        self._failures: dict[str, int] = {}
        self._committed_ids: list[str] = []
        """Committed outcomes the probe has not been told of yet."""
        self._lock = threading.Lock()
        self._reporting = _Reporting(self)

    def __bool__(self) -> bool:
        return bool(self._ops)

    def keep(self, op: StorageOp[Any]) -> bool:
        """Keep `op` for the next write when it may travel with one."""
        if not (self.enabled and isinstance(op, Update) and op.with_next_write):
            return False
        with self._lock:
            self._ops.append(op)
        return True

    def carrying(self, *, counts: bool = True) -> AbstractContextManager[list[Update]]:
        """Take the kept outcomes for the transaction in the body.

        The body writes them (first) and commits. If it raises, they are kept
        again for the next write; `counts=False` (a read's commit of them)
        does not count that towards `CARRY_ATTEMPTS`. (An object, not a
        generator, as `reporting`.)
        """
        return _Carrying(self, counts)

    def reporting(self) -> AbstractContextManager[None]:
        """Around the store's lock: once the body (which takes and releases
        it) is done, tell the probe `AFTER_OUTCOME` of each kept outcome
        committed meanwhile, outside the lock. (An object, not a generator:
        every transaction of the store enters it.)"""
        return self._reporting

    def _report(self) -> None:
        if self._committed_ids:
            with self._lock:
                ids, self._committed_ids = self._committed_ids, []
            probe = self._probe()
            if probe is not None:
                for effect_id in ids:
                    probe(FaultPoint.AFTER_OUTCOME, effect_id)

    def written(self, op: Update, changed: bool) -> None:
        """Note how a kept outcome's write went: one that changed no row (its
        attempt was replaced meanwhile) is said, never dropped in silence."""
        if not changed:
            logger.error(
                "the kept outcome of effect %s matched no row (status or attempt "
                "changed meanwhile: another attempt of the call replaced it), so "
                "it was not recorded. Fix: check the target; if the call acted "
                "twice, undo one by hand",
                op.effect_id,
            )

    def _take(self) -> list[Update]:
        if not self._ops:
            return []
        with self._lock:
            taken, self._ops = self._ops, []
        return taken

    def _put_back(self, taken: list[Update], *, counts: bool) -> None:
        if not taken:
            return
        kept: list[Update] = []
        with self._lock:
            for op in taken:
                failures = self._failures.get(op.effect_id, 0) + int(counts)
                if failures < CARRY_ATTEMPTS:
                    self._failures[op.effect_id] = failures
                    kept.append(op)
                else:
                    self._failures.pop(op.effect_id, None)
                    logger.error(
                        "dropped the outcome of effect %s after %d failed writes: "
                        "its intent stays pending (outcome unknown). Fix: once the "
                        "database accepts writes, check the target and call "
                        "saver.resolve_effect(config, %r, applied=True or False)",
                        op.effect_id,
                        failures,
                        op.effect_id,
                    )
            self._ops[:0] = kept

    def _committed(self, taken: list[Update]) -> None:
        if not taken:
            return
        with self._lock:
            for op in taken:
                self._failures.pop(op.effect_id, None)
            if self._probe() is not None:
                self._committed_ids.extend(op.effect_id for op in taken)


class _Reporting(AbstractContextManager[None]):
    """`KeptOutcomes.reporting()`: reports on the way out, whatever happened."""

    __slots__ = ("_kept",)

    def __init__(self, kept: KeptOutcomes) -> None:
        self._kept = kept

    def __exit__(self, *exc: object) -> None:
        if self._kept._committed_ids:
            self._kept._report()


class _Carrying(AbstractContextManager[list[Update]]):
    """`KeptOutcomes.carrying()`."""

    __slots__ = ("_counts", "_kept", "_taken")

    def __init__(self, kept: KeptOutcomes, counts: bool) -> None:
        self._kept = kept
        self._counts = counts
        self._taken: list[Update] = []

    def __enter__(self) -> list[Update]:
        if self._kept._ops:
            self._taken = self._kept._take()
        return self._taken

    def __exit__(self, kind: object, *exc: object) -> None:
        if not self._taken:
            return
        if kind is None:
            self._kept._committed(self._taken)
        else:
            self._kept._put_back(self._taken, counts=self._counts)
