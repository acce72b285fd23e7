"""undo_run_flow: a deleted run's effects undone, newest first, no restore."""

from __future__ import annotations

from langgraph_rollback.core.cancelled import undo_run_flow
from langgraph_rollback.core.locks import LockHolder
from langgraph_rollback.core.ops import (
    AwaitCall,
    CheckpointLink,
    LockThread,
    Notify,
    Outcome,
    ReadAncestry,
    ReadHead,
    ReadNamespaceStates,
    ReadSubtree,
    SaveRollback,
    Select,
    Undo,
    UnlockThread,
    Update,
)
from langgraph_rollback.core.policies import Policies
from tests.unit.build import SERDE, registry, row, tool
from tests.unit.script import Script

HOLDER = LockHolder(token="tok", host="h", pid=1, started="s")
CHAIN = [CheckpointLink("c2", "c1", run_id="r1"), CheckpointLink("c1", None)]


def undo_run() -> Script:
    flow = undo_run_flow(
        "t",
        "r1",
        holder=HOLDER,
        policies=Policies(),
        registry=registry(tool()),
        serde=SERDE,
        wait=5.0,
    )
    return Script(flow)


def test_waits_for_the_runs_calls_in_flight_then_undoes_only_its_effects() -> None:
    flow = undo_run()
    flow.reply(
        Select,
        [
            row("p1", status="pending", run_id="r1"),
            row("p2", status="pending", run_id="r0"),
        ],
    )
    flow.reply(AwaitCall, "finished", effect_id="p1", timeout=5.0)
    flow.reply(LockThread, None, thread_id="t", holder=HOLDER)
    flow.reply(ReadHead, "c2")
    flow.reply(ReadHead, "c2")
    flow.reply(ReadAncestry, CHAIN)  # run_start("r1"): it started from c1
    flow.reply(ReadHead, "c2")
    flow.reply(ReadAncestry, CHAIN, stop="c1")
    flow.reply(ReadSubtree, list(reversed(CHAIN)))
    rows = [row("e2", root="c2", run_id="r1", seq=2), row("e1", root="c1", seq=1)]
    flow.reply(Select, rows)
    flow.reply(SaveRollback)
    flow.reply(Update, True, effect_id="e2")
    flow.reply(Undo, Outcome(value="restored a"))
    flow.reply(Update, True)
    flow.reply(Notify)
    flow.reply(ReadNamespaceStates, [], before=())
    saved = flow.reply(SaveRollback).record
    flow.reply(UnlockThread, None, holder=HOLDER)
    report = flow.returns()
    assert (report.status, report.restored_checkpoint_id) == ("completed", None)
    assert [s.effect.id for s in report.undone] == ["e2"]
    assert saved["status"] == "completed"


def test_nothing_when_the_runs_checkpoints_are_gone_and_its_effects_undone() -> None:
    flow = undo_run()
    flow.reply(Select, [])
    flow.reply(LockThread)
    flow.reply(ReadHead, None)
    flow.reply(Select, [row("e1", status="compensated", run_id="r1")])
    flow.reply(UnlockThread, None, holder=HOLDER)
    assert flow.returns() is None


def test_a_thread_without_checkpoints_undoes_the_runs_effects_from_the_ledger() -> None:
    flow = undo_run()
    flow.reply(Select, [])
    flow.reply(LockThread)
    flow.reply(ReadHead, None)  # durability "exit": the run stored no checkpoint
    rows = [
        row("e3", root="c9", run_id="r2", seq=3),
        row("e2", root="c9", run_id="r1", seq=2),
        row("e1", root="c8", run_id="r1", seq=1, status="compensated"),
    ]
    flow.reply(Select, rows)
    flow.reply(SaveRollback)
    flow.reply(Update, True, effect_id="e2")
    flow.reply(Undo, Outcome(value="restored a"))
    flow.reply(Update, True)
    flow.reply(Notify)
    flow.reply(ReadNamespaceStates, [], before=())
    saved = flow.reply(SaveRollback).record
    flow.reply(UnlockThread, None, holder=HOLDER)
    report = flow.returns()
    assert [s.effect.id for s in report.undone] == ["e2"]
    assert [e.id for e in report.already_compensated] == ["e1"]
    assert (report.target_checkpoint_id, report.restored_checkpoint_id) == (
        "first",
        None,
    )
    assert saved["status"] == "completed"


def test_a_run_with_no_checkpoint_of_its_own_is_planned_from_the_start() -> None:
    flow = undo_run()
    flow.reply(Select, [])
    flow.reply(LockThread)
    flow.reply(ReadHead, "c1")
    flow.reply(ReadHead, "c1")
    flow.reply(ReadAncestry, [CheckpointLink("c1", None)])  # no checkpoint of r1
    flow.reply(ReadHead, "c1")
    flow.reply(ReadAncestry, [CheckpointLink("c1", None)], stop="first")
    flow.reply(ReadSubtree, [CheckpointLink("c1", None)])
    flow.reply(Select, [row("e1", root="c1", status="compensated", run_id="r1")])
    flow.reply(UnlockThread, None, holder=HOLDER)
    assert flow.returns() is None
