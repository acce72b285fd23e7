"""Section 3: rollback throughput on a SQLite file.

A thread is built (see `fixtures`) with a chain of checkpoints and applied
`write_file` effects anchored on the last ten checkpoints after the target;
`rollback(graph, config, to=target)` then undoes them all, newest first,
each with a trivial inverse (a counter), and restores the target as the new
head. The figure is effects undone per second of the whole call (lock, plan,
claims, inverses, outcomes, restore).

Cases:

- `short`: a 20-checkpoint thread, N effects after the target, none before;
- `long`: the same N effects after the target of a thread with a long
  history before it (many more checkpoints, and older effects already in the
  ledger): the per-effect cost should not change, since planning reads the
  path and the target's subtree, not the history.

Each repeat starts from a fresh copy of the case's database file.
"""

from __future__ import annotations

import contextlib
import shutil
import sqlite3
from pathlib import Path
from typing import Any

from benchmarks.agent import build_agent
from benchmarks.common import Env, median, new_thread_id, now
from benchmarks.fixtures import insert_effects, spread, sqlite_thread
from langgraph_rollback import (
    Effect,
    SqliteRollbackSaver,
    ToolRegistry,
    plan_rollback,
    rollback,
)

AFTER_TARGET = 10
"""Checkpoints after the target that the undone effects are anchored on."""


def build_case(
    directory: Path, *, effects: int, history_checkpoints: int, history_effects: int
) -> dict[str, Any]:
    """A database file with a thread: history, target, ten checkpoints after."""
    path = directory / f"rollback-{effects}-{history_checkpoints}.sqlite"
    thread_id = new_thread_id()
    ids = sqlite_thread(str(path), thread_id, history_checkpoints + 1 + AFTER_TARGET)
    target = ids[history_checkpoints]
    before, after = ids[:history_checkpoints], ids[history_checkpoints + 1 :]
    anchors = spread(before, history_effects) if history_effects else []
    insert_effects(str(path), thread_id, anchors + spread(after, effects))
    return {
        "path": path,
        "thread_id": thread_id,
        "target": target,
        "effects": effects,
        "history_checkpoints": history_checkpoints + 1 + AFTER_TARGET,
        "ledger_rows": effects + history_effects,
    }


def run_case(case: dict[str, Any], scratch: Path) -> dict[str, float]:
    """Roll a fresh copy of the case back; seconds (plan alone, and rollback)."""
    path = scratch / "run.sqlite"
    shutil.copyfile(case["path"], path)
    counter = [0]

    def undo(effect: Effect) -> None:
        counter[0] += 1

    registry = ToolRegistry()
    config = {"configurable": {"thread_id": case["thread_id"]}}
    try:
        with contextlib.closing(sqlite3.connect(path, check_same_thread=False)) as conn:
            saver = SqliteRollbackSaver(conn, registry=registry)
            graph = build_agent(scratch / "files", registry, 1, undo).compile(
                checkpointer=saver
            )
            start = now()
            plan = plan_rollback(graph, config, to=case["target"])
            plan_s = now() - start
            assert len(plan.to_undo) == case["effects"], len(plan.to_undo)
            start = now()
            report = rollback(graph, config, to=case["target"])
            seconds = now() - start
    finally:
        for leftover in scratch.glob("run.sqlite*"):
            leftover.unlink()
    if report.status != "completed" or len(report.undone) != case["effects"]:
        raise AssertionError(f"rollback: {report.status}, {len(report.undone)} undone")
    if counter[0] != case["effects"]:
        raise AssertionError(f"{counter[0]} inverses ran for {case['effects']}")
    return {"seconds": seconds, "plan_seconds": plan_s}


def bench(
    env: Env,
    *,
    small: int,
    large: int,
    history_checkpoints: int,
    history_effects: int,
    repeats: int,
    large_repeats: int,
    log: Any = print,
) -> dict[str, Any]:
    """Undo `small` and `large` effects (short history) and `small` (long history)."""
    directory = env.tmpdir("rollback-")
    cases = {
        "short_small": build_case(
            directory, effects=small, history_checkpoints=9, history_effects=0
        ),
        "long_small": build_case(
            directory,
            effects=small,
            history_checkpoints=history_checkpoints,
            history_effects=history_effects,
        ),
        "short_large": build_case(
            directory, effects=large, history_checkpoints=9, history_effects=0
        ),
    }
    log("  rollback: cases built")
    scratch = env.tmpdir("rollback-run-")
    samples: dict[str, list[dict[str, float]]] = {name: [] for name in cases}
    run_case(cases["short_small"], scratch)  # warm
    for repeat in range(max(repeats, large_repeats)):
        if repeat < repeats:
            pair = ("short_small", "long_small")
            for name in pair if repeat % 2 == 0 else pair[::-1]:
                samples[name].append(run_case(cases[name], scratch))
        if repeat < large_repeats:
            samples["short_large"].append(run_case(cases["short_large"], scratch))
        log(f"  rollback: repeat {repeat + 1}/{max(repeats, large_repeats)}")
    shutil.rmtree(directory, ignore_errors=True)
    out: dict[str, Any] = {}
    for name, runs in samples.items():
        case = cases[name]
        seconds = median([r["seconds"] for r in runs])
        out[name] = {
            "effects": case["effects"],
            "checkpoints": case["history_checkpoints"],
            "ledger_rows": case["ledger_rows"],
            "repeats": len(runs),
            "seconds": [r["seconds"] for r in runs],
            "median_seconds": seconds,
            "effects_per_s": case["effects"] / seconds,
            "us_per_effect": seconds / case["effects"] * 1e6,
            "plan_ms": median([r["plan_seconds"] for r in runs]) * 1000,
        }
    short, long_, large_ = out["short_small"], out["long_small"], out["short_large"]
    out["history_ratio"] = median(
        [
            lo["seconds"] / sh["seconds"]
            for lo, sh in zip(
                samples["long_small"], samples["short_small"], strict=True
            )
        ]
    )
    out["linearity"] = large_["us_per_effect"] / short["us_per_effect"]
    del long_
    out["method"] = {
        "inverse": "a trivial function (counter), no I/O",
        "timing": "rollback() wall time (lock, plan, per effect claim + inverse "
        "+ outcome, restore), fresh copy of the file per run, median over repeats",
        "history_ratio": "per-repeat long/short history seconds for the same "
        "number of effects, median (1.0 = independent of history length)",
        "linearity": "us per effect undoing the large count / the small count "
        "(1.0 = linear in effects undone)",
    }
    return out
