"""The one door to storage, and the fault points a store reports.

A flow reaches storage only through the operations it yields
(`core.ops.StorageOp`); a driver hands each one to the store's single entry
point, `execute(op)` or `aexecute(op)`, the way httpx hands a request to a
transport's `handle_request`. Every saver implements these protocols; the core
never imports a saver.

Fault points. A store's `probe`, when set, is called at named points of every
write that matters for crash safety, with the point and the effect's id (None
for points of a rollback as a whole). The kill matrix (tests/crash) kills its
process there; a rollback drill can use the same hook to prove its inverses
survive a crash at each point:

```python
def probe(point: FaultPoint, effect_id: str | None) -> None:
    if point is FaultPoint.AFTER_CLAIM:
        os.kill(os.getpid(), signal.SIGKILL)

saver.probe = probe
```
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
from typing import Protocol, TypeVar

from langgraph.checkpoint.serde.base import SerializerProtocol

from langgraph_rollback.core.ledger_codec import LedgerCodec
from langgraph_rollback.core.ops import StorageOp

__all__ = ["AsyncLedgerStore", "FaultPoint", "LedgerStore", "Probe", "RollbackStore"]

R = TypeVar("R")


class FaultPoint(StrEnum):
    """Where a store reports progress to its `probe`."""

    BEFORE_INTENT = "before_intent"
    """An intent row is about to be committed (`Begin`, `BeginIfNewKey`).
    A `BeginIfNewKey` that finds another effect with the call's key writes
    nothing: the points come again around the `Begin` that follows, if any."""
    AFTER_INTENT = "after_intent"
    """The intent operation is over: the row committed (or found, or, for a
    `BeginIfNewKey`, not written); the forward call has not started."""
    AFTER_FORWARD = "after_forward"
    """The forward call returned or raised; its outcome is not recorded yet."""
    AFTER_OUTCOME = "after_outcome"
    """The call's outcome is committed (by itself, or with the next write)."""
    BEFORE_CLAIM = "before_claim"
    """A rollback is about to claim an effect (`compensating`)."""
    AFTER_CLAIM = "after_claim"
    """The claim is committed; the inverse has not started."""
    AFTER_INVERSE = "after_inverse"
    """The inverse returned or raised; its outcome is not recorded yet."""
    BEFORE_RESTORE = "before_restore"
    """A rollback is about to write the restored head."""
    AFTER_RESTORE = "after_restore"
    """The restored head is committed."""


Probe = Callable[[FaultPoint, "str | None"], None]
"""Called with a fault point and the effect it concerns (None: the rollback)."""


class LedgerStore(Protocol):
    """A store driven with blocking I/O."""

    serde: SerializerProtocol
    probe: Probe | None

    @property
    def ledger_codec(self) -> LedgerCodec:
        """How ledger payloads are written and read."""
        ...

    def execute(self, op: StorageOp[R]) -> R:
        """Perform one storage operation and return its result."""
        ...


class AsyncLedgerStore(Protocol):
    """A store driven with async I/O."""

    serde: SerializerProtocol
    probe: Probe | None

    @property
    def ledger_codec(self) -> LedgerCodec:
        """How ledger payloads are written and read."""
        ...

    async def aexecute(self, op: StorageOp[R]) -> R:
        """Perform one storage operation and return its result."""
        ...


class RollbackStore(LedgerStore, AsyncLedgerStore, Protocol):
    """A store with both entry points, as every rollback saver is."""
