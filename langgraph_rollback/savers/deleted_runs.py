"""Undoing the effects of runs the server deletes (`delete_for_runs`).

LangGraph's Agent Server deletes a cancelled run's checkpoints with
`adelete_for_runs` (`multitask_strategy="rollback"`); with the saver's
`undo_deleted_runs` on, its effects are undone first, newest first, under the
thread's lock, with the default policies (`core.cancelled.undo_run_flow`).
Never raises: what cannot be undone stays in the ledger, and is logged.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from typing import Protocol

from langgraph_rollback._errors import RollbackInProgressError
from langgraph_rollback._liveness import new_holder
from langgraph_rollback.core.cancelled import undo_run_flow
from langgraph_rollback.core.ledger_codec import LedgerCodec
from langgraph_rollback.core.ops import FindRun, Flow
from langgraph_rollback.core.policies import Policies
from langgraph_rollback.core.registry import ToolRegistry
from langgraph_rollback.core.report import RollbackReport
from langgraph_rollback.core.store import RollbackStore
from langgraph_rollback.drivers import run_async, run_sync


class Saver(RollbackStore, Protocol):
    """What undoing deleted runs needs of a saver (`BaseRollbackSaver` is one)."""

    registry: ToolRegistry
    undo_deleted_runs: bool
    deleted_run_wait: float

    @property
    def ledger_codec(self) -> LedgerCodec: ...


__all__ = ["aundo_runs", "undo_runs"]

logger = logging.getLogger("langgraph_rollback.savers.base")

_LOCK_POLL_S = 0.05
"""How often a deleted run's undo looks again at a thread another rollback holds."""

_UNDO_FAILED = (
    "Could not undo the effects of deleted run %s; they stay in the ledger, "
    "anchored where the run started: roll back to there (or before) to undo them"
)


def _logged(report: RollbackReport, run_id: str) -> RollbackReport:
    level = logging.INFO if report.ok else logging.WARNING
    logger.log(level, "Undid deleted run %s:\n%s", run_id, report)
    return report


def undo_runs(saver: Saver, run_ids: Sequence[str]) -> list[RollbackReport]:
    """Undo these runs' effects before their checkpoints go; never raises."""
    if not saver.undo_deleted_runs:
        return []
    reports: list[RollbackReport] = []
    for run_id in run_ids:
        try:
            for thread_id in saver.execute(FindRun(run_id)):
                report = _undo_run(saver, thread_id, run_id)
                reports += [] if report is None else [_logged(report, run_id)]
        except Exception:
            logger.exception(_UNDO_FAILED, run_id)
    return reports


def _undo_run(saver: Saver, thread_id: str, run_id: str) -> RollbackReport | None:
    deadline = time.monotonic() + saver.deleted_run_wait
    while True:
        try:
            return run_sync(_undo_run_flow(saver, thread_id, run_id), saver)
        except RollbackInProgressError:
            if time.monotonic() > deadline:
                raise
            time.sleep(_LOCK_POLL_S)


async def aundo_runs(saver: Saver, run_ids: Sequence[str]) -> list[RollbackReport]:
    """Async `undo_runs`."""
    if not saver.undo_deleted_runs:
        return []
    reports: list[RollbackReport] = []
    for run_id in run_ids:
        try:
            for thread_id in await saver.aexecute(FindRun(run_id)):
                report = await _aundo_run(saver, thread_id, run_id)
                reports += [] if report is None else [_logged(report, run_id)]
        except Exception:
            logger.exception(_UNDO_FAILED, run_id)
    return reports


async def _aundo_run(
    saver: Saver, thread_id: str, run_id: str
) -> RollbackReport | None:
    deadline = time.monotonic() + saver.deleted_run_wait
    while True:
        try:
            return await run_async(_undo_run_flow(saver, thread_id, run_id), saver)
        except RollbackInProgressError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(_LOCK_POLL_S)


def _undo_run_flow(
    saver: Saver, thread_id: str, run_id: str
) -> Flow[RollbackReport | None]:
    return undo_run_flow(
        thread_id,
        run_id,
        holder=new_holder(),
        policies=Policies(),
        registry=saver.registry,
        serde=saver.ledger_codec,
        wait=saver.deleted_run_wait,
    )
