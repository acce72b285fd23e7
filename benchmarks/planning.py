"""Section 4: planning a rollback on a large thread, and the ledger's first page.

Two SQLite files hold one thread each with the same chain of checkpoints
(10,000 in the full run) and a ledger of 10,000 or 100,000 applied effects;
in both, the 100 most recent effects lie on the ten checkpoints after the
target and the rest on the history before it. `plan_rollback` to that
target must cost the same on both: it walks the path from the head, the
target's subtree and the effects anchored there, never the whole ledger.

Figures: plan time (median over repeats, the two files interleaved), peak
Python memory of one plan (`tracemalloc`, after a warm-up plan), and the time
of `list_effects(config, limit=50)` (the first page, newest first).
"""

from __future__ import annotations

import contextlib
import gc
import sqlite3
import tracemalloc
from pathlib import Path
from typing import Any

from benchmarks.agent import build_agent
from benchmarks.common import Env, median, new_thread_id, now
from benchmarks.fixtures import insert_effects, spread, sqlite_thread
from langgraph_rollback import SqliteRollbackSaver, ToolRegistry, plan_rollback

AFTER_TARGET = 10
PLANNED = 100
PAGE = 50


def build(directory: Path, checkpoints: int, ledger_rows: int) -> dict[str, Any]:
    """A file with one large thread; the target is 10 checkpoints before the head."""
    path = directory / f"plan-{ledger_rows}.sqlite"
    thread_id = new_thread_id()
    ids = sqlite_thread(str(path), thread_id, checkpoints)
    split = len(ids) - AFTER_TARGET
    target = ids[split - 1]
    anchors = spread(ids[: split - 1], ledger_rows - PLANNED)
    anchors += spread(ids[split:], PLANNED)
    insert_effects(str(path), thread_id, anchors)
    return {
        "path": path,
        "thread_id": thread_id,
        "target": target,
        "checkpoints": checkpoints,
        "ledger_rows": ledger_rows,
    }


def _measure(case: dict[str, Any], scratch: Path, repeats: int) -> dict[str, Any]:
    registry = ToolRegistry()
    config = {"configurable": {"thread_id": case["thread_id"]}}
    with contextlib.closing(
        sqlite3.connect(case["path"], check_same_thread=False)
    ) as conn:
        saver = SqliteRollbackSaver(conn, registry=registry)
        graph = build_agent(scratch / f"files-{case['ledger_rows']}", registry, 1)
        graph = graph.compile(checkpointer=saver)
        plan = plan_rollback(graph, config, to=case["target"])  # warm
        assert len(plan.to_undo) == PLANNED, len(plan.to_undo)
        plan_s = []
        page_s = []
        for _ in range(repeats):
            start = now()
            plan_rollback(graph, config, to=case["target"])
            plan_s.append(now() - start)
            start = now()
            page = saver.list_effects(config, limit=PAGE)
            page_s.append(now() - start)
            assert len(page) == PAGE
        gc.collect()
        tracemalloc.start()
        try:
            tracemalloc.reset_peak()
            plan_rollback(graph, config, to=case["target"])
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    return {"plan_s": plan_s, "page_s": page_s, "peak_bytes": peak}


def bench(
    env: Env,
    *,
    checkpoints: int,
    small_rows: int,
    large_rows: int,
    repeats: int,
    log: Any = print,
) -> dict[str, Any]:
    """Plan on the small and the large ledger, interleaved."""
    directory = env.tmpdir("planning-")
    small = build(directory, checkpoints, small_rows)
    large = build(directory, checkpoints, large_rows)
    log("  planning: threads built")
    scratch = env.tmpdir("planning-run-")
    runs: dict[str, list[dict[str, Any]]] = {"small": [], "large": []}
    rounds = 3
    for r in range(rounds):
        order = ("small", "large") if r % 2 == 0 else ("large", "small")
        for name in order:
            case = small if name == "small" else large
            runs[name].append(_measure(case, scratch, max(1, repeats // rounds)))
    out: dict[str, Any] = {}
    for name, case in (("small", small), ("large", large)):
        plan_s = [s for run in runs[name] for s in run["plan_s"]]
        page_s = [s for run in runs[name] for s in run["page_s"]]
        out[name] = {
            "checkpoints": case["checkpoints"],
            "ledger_rows": case["ledger_rows"],
            "planned_effects": PLANNED,
            "plan_ms": median(plan_s) * 1000,
            "plan_peak_kib": median([run["peak_bytes"] for run in runs[name]]) / 1024,
            "first_page_ms": median(page_s) * 1000,
            "samples": len(plan_s),
        }
    out["memory_ratio"] = out["large"]["plan_peak_kib"] / out["small"]["plan_peak_kib"]
    out["time_ratio"] = out["large"]["plan_ms"] / out["small"]["plan_ms"]
    out["method"] = {
        "target": f"{AFTER_TARGET} checkpoints before the head, {PLANNED} effects "
        "to undo; the rest of the ledger anchored on older checkpoints",
        "memory": "tracemalloc peak of one plan_rollback call (Python "
        "allocations only; SQLite's page cache is not counted)",
        "first_page": f"list_effects(config, limit={PAGE})",
    }
    return out
