"""A rollback on SQLite whose inverse returns odd values: what lands in
`lgrb_rollbacks.report` (read with the saver's ledger codec), and whether
the rollback still reports."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from typing import Any, TypedDict

import pytest
from langgraph.graph import END, START, StateGraph

from langgraph_rollback import (
    Effect,
    EffectStatus,
    SqliteRollbackSaver,
    ToolRegistry,
    reversible,
    rollback,
)


class State(TypedDict, total=False):
    n: int


def roll_back_an_inverse_returning(
    db: str, value: Callable[[], Any]
) -> tuple[Any, Any, list[tuple[Any, ...]], list[Effect]]:
    """Run one reversible call, roll it back; its inverse returns `value()`.
    The report, the stored report (decoded), the rollback rows, the effects."""
    registry = ToolRegistry()

    def undo(effect: Effect) -> Any:
        return value()

    @reversible(undo=undo, registry=registry)
    def write(path: str) -> str:
        return path

    def act(state: State) -> State:
        write("a.txt")
        return {"n": 1}

    builder = StateGraph(State)
    builder.add_node(act)
    builder.add_edge(START, "act")
    builder.add_edge("act", END)
    config: Any = {"configurable": {"thread_id": "t"}}
    with SqliteRollbackSaver.from_conn_string(db, registry=registry) as saver:
        graph = builder.compile(checkpointer=saver)
        graph.invoke({}, config)
        report: Any = None
        try:
            report = rollback(graph, config, to="first", registry=registry)
        finally:
            with closing(sqlite3.connect(db)) as conn:
                rows = conn.execute(
                    "SELECT status, report_type, report FROM lgrb_rollbacks"
                ).fetchall()
            effects = saver.list_effects(config)
        stored = [
            saver.ledger_codec.loads_typed((t, b)) if t is not None else None
            for _, t, b in rows
        ]
    return report, stored, rows, effects


@pytest.mark.parametrize(
    ("odd", "kept"),
    [
        (lambda: bytearray(b"ab"), b"ab"),
        (lambda: memoryview(b"cd"), b"cd"),
        (lambda: {1: "x", None: "y"}, {1: "x", None: "y"}),
    ],
    ids=["bytearray", "memoryview", "non-str-keys"],
)
def test_an_odd_inverse_result_is_kept_in_the_stored_report(
    tmp_path: Path, odd: Callable[[], Any], kept: Any
) -> None:
    report, stored, rows, effects = roll_back_an_inverse_returning(
        str(tmp_path / "r.sqlite"), odd
    )
    assert report.status == "completed"
    assert [r[0] for r in rows] == ["completed"]
    (content,) = stored
    assert content["status"] == "completed"
    assert content["undone"][0]["result"] == kept
    assert effects[0].status is EffectStatus.COMPENSATED


def test_a_report_the_codec_refuses_is_stored_as_its_text(tmp_path: Path) -> None:
    report, stored, rows, _ = roll_back_an_inverse_returning(
        str(tmp_path / "r.sqlite"), threading.Lock
    )
    assert report.status == "completed"
    assert [r[0] for r in rows] == ["completed"]
    assert stored == [{"text": str(report)}]


def test_an_inverse_returning_20_mb_still_reports(tmp_path: Path) -> None:
    report, _, rows, effects = roll_back_an_inverse_returning(
        str(tmp_path / "r.sqlite"), lambda: "x" * 20_000_000
    )
    assert report.status == "completed"
    assert [r[0] for r in rows] == ["completed"]
    assert effects[0].status is EffectStatus.COMPENSATED
