"""Claims in `drivers.IN_FLIGHT` on every path a driver takes: none outlives
the flow that made it, so no replay waits for a call nobody performs."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from langgraph_rollback.core.ledger import effect_from_row
from langgraph_rollback.core.ledger_codec import LedgerCodec
from langgraph_rollback.core.ops import (
    AwaitCall,
    Begin,
    BeginIfNewKey,
    Flow,
    Outcome,
    Perform,
    Update,
    do,
)
from langgraph_rollback.core.registry import ToolRegistry
from langgraph_rollback.core.store import FaultPoint
from langgraph_rollback.drivers import (
    IN_FLIGHT,
    _claim,
    _settle,
    _starting,
    run_async,
    run_sync,
)
from langgraph_rollback.savers.aio_sqlite import AsyncSqliteRollbackSaver
from langgraph_rollback.savers.sqlite import SqliteRollbackSaver
from tests.support.waiting import wait_for
from tests.unit.build import row


def state(effect_id: str) -> str:
    """What a replay elsewhere in this process is told, without waiting."""
    return IN_FLIGHT.wait(AwaitCall(effect_id, owner=None, timeout=0))


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteRollbackSaver]:
    path = str(tmp_path / "ledger.sqlite")
    with SqliteRollbackSaver.from_conn_string(path, registry=ToolRegistry()) as s:
        yield s


def refuse_intent(point: FaultPoint, effect_id: str | None) -> None:
    if point is FaultPoint.BEFORE_INTENT:
        raise OSError("disk I/O error")


def test_a_begin_that_raised_leaves_no_claim_once_the_flow_ends(
    store: SqliteRollbackSaver,
) -> None:
    intent = row(effect_id="paths-1", status="pending")

    def flow() -> Flow[None]:
        yield from do(Begin(intent))

    store.probe = refuse_intent
    with pytest.raises(OSError, match="disk I/O"):
        run_sync(flow(), store)
    assert state("paths-1") == "gone"


def test_a_flow_that_survives_its_failed_begin_does_not_wait_for_itself(
    store: SqliteRollbackSaver,
) -> None:
    """Nothing was performed: the flow's own claim must not make the call
    look in flight while the flow goes on (here, asking about it)."""
    intent = row(effect_id="paths-2", status="pending")

    def flow() -> Flow[str]:
        with contextlib.suppress(OSError):
            yield from do(Begin(intent))
        return (yield from do(AwaitCall("paths-2", owner=None, timeout=0)))

    store.probe = refuse_intent
    assert run_sync(flow(), store) == "gone"


def test_a_kin_key_then_a_written_begin_is_in_flight_until_the_call_ends(
    store: SqliteRollbackSaver,
) -> None:
    """`BeginIfNewKey` finds a kin effect (nothing written, claim dropped);
    the fallback `Begin` writes the intent: in flight while performed, not
    after, and the call runs once."""
    kin = row(effect_id="kin-a", status="pending", call_key="k#0")
    store.execute(Begin(kin))
    intent = row(effect_id="paths-3", status="pending", call_key="k#0")
    seen: list[str] = []

    def perform() -> str:
        seen.append(state("paths-3"))
        return "ok"

    def flow() -> Flow[Outcome]:
        found = yield from do(BeginIfNewKey(intent))
        assert found is None and state("paths-3") == "gone"
        stored, inserted = yield from do(Begin(intent))
        assert inserted
        effect = effect_from_row(stored, store.ledger_codec)
        return (yield from do(Perform(effect.id, lambda: effect)))

    outcome = run_sync(flow(), store, perform=perform)
    assert (outcome.value, seen, state("paths-3")) == ("ok", ["running"], "gone")


def test_a_restarted_call_stays_in_flight_while_any_claiming_flow_remains() -> None:
    """B's intent commits; A found it, then (told it was gone) restarts it:
    either flow ending leaves the other's claim; both ending ends it."""
    begin = Begin(row(effect_id="paths-4"))
    a: list[str] = []
    b: list[str] = []
    _claim(begin, a)
    _claim(begin, b)
    _settle("paths-4", b, True)  # B's intent committed
    _settle("paths-4", a, False)  # A found it there
    effect = effect_from_row(begin.row, LedgerCodec())
    _starting(Perform(effect.id, lambda: effect), a)
    assert a == ["paths-4"]
    IN_FLIGHT.end("paths-4", b)
    assert state("paths-4") == "running"
    IN_FLIGHT.end("paths-4", a)
    assert state("paths-4") == "gone"


async def test_a_run_cancelled_at_its_begin_leaves_no_claim_and_no_call(
    tmp_path: Path,
) -> None:
    """The async driver's task is cancelled while its intent is being
    written: the call is not performed, and once the flow has ended nobody
    is told it is in flight."""
    path = str(tmp_path / "ledger.sqlite")
    intent = row(effect_id="paths-5", status="pending")
    performed: list[str] = []

    async def perform() -> str:
        performed.append("call")
        return "ok"

    def flow() -> Flow[Outcome]:
        stored, _ = yield from do(Begin(intent))
        effect = effect_from_row(stored, LedgerCodec())
        return (yield from do(Perform(effect.id, lambda: effect)))

    async with AsyncSqliteRollbackSaver.from_conn_string(
        path, registry=ToolRegistry()
    ) as store:
        task = asyncio.ensure_future(run_async(flow(), store, perform=perform))
        claimed: list[str] = []

        def cancel_there(point: FaultPoint, effect_id: str | None) -> None:
            if point is FaultPoint.BEFORE_INTENT:
                claimed.append(state("paths-5"))
                task.get_loop().call_soon_threadsafe(task.cancel)

        store.probe = cancel_there
        try:
            outcome = await task
        except asyncio.CancelledError:
            outcome = None
    cancelled = outcome is None or isinstance(outcome.error, asyncio.CancelledError)
    assert (claimed, cancelled, performed) == (["running"], True, [])
    assert state("paths-5") == "gone"


def test_an_inverse_key_has_one_claim_ended_by_its_end() -> None:
    """`undo:<id>` is claimed with no owner: a second start is refused (the
    inverse is already running) and one end ends it."""
    assert IN_FLIGHT.start("undo:paths-6")
    assert not IN_FLIGHT.start("undo:paths-6")
    assert state("undo:paths-6") == "running"
    IN_FLIGHT.end("undo:paths-6")
    assert state("undo:paths-6") == "gone"


def test_a_restarted_call_is_in_flight_from_its_restart_committing(
    store: SqliteRollbackSaver,
) -> None:
    """A replay restarts a pending call nobody performs (a new attempt, this
    process its owner). Between the restart's commit and the call starting
    (a thread switch, or a slow commit reply), another replay of this
    process that finds the new attempt must be told it is in flight: told
    "gone", it would take it for abandoned, restart it again (its attempt
    check passes) and perform it too."""
    pending = row(effect_id="paths-7", status="pending")
    store.execute(Begin(pending))
    restarted = threading.Event()
    go_on = threading.Event()
    performed: list[str] = []

    def flow() -> Flow[Outcome]:
        changes = {"status": "pending", "attempt": pending.attempt + 1}
        won = yield from do(
            Update(
                "paths-7",
                changes,
                expect=("pending",),
                expect_attempt=1,
                starts_call=True,
            )
        )
        assert won
        restarted.set()
        go_on.wait(10)
        effect = effect_from_row(pending, LedgerCodec())
        return (yield from do(Perform(effect.id, lambda: effect)))

    worker = threading.Thread(
        target=run_sync,
        args=(flow(), store),
        kwargs={"perform": lambda: performed.append("call")},
    )
    worker.start()
    wait_for(restarted.is_set, "the restart committed")
    seen = state("paths-7")
    go_on.set()
    worker.join(10)
    assert (seen, performed, state("paths-7")) == ("running", ["call"], "gone")
