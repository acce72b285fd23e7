"""Section 2: what recording one effect costs, against the raw commit floor.

- The floor: raw `sqlite3`, WAL mode, one ~2 KB row inserted per transaction,
  with `synchronous=FULL` and `=NORMAL`, on a file in the same directory.
- Recording: the write-ahead flow of one declared tool call (`record_flow`:
  the intent committed before the call, the outcome written after it) driven
  against a `SqliteRollbackSaver` and an `AsyncSqliteRollbackSaver` on a
  file, with a call that does nothing, so only the ledger's cost is left. Its
  arguments are a path and a 200-byte content, as in the agent loop. With no
  graph around it, each outcome travels with the next call's intent (in a
  graph, with the task's writes); the last one is committed inside the timing.
- Commits: every `COMMIT` statement the saver's connection runs is counted
  (`sqlite3` `set_trace_callback`), in the recording loop and in the agent
  loop of section 1 (ours minus upstream, per effect).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
from pathlib import Path
from typing import Any

import aiosqlite

from benchmarks.agent import CONTENT, build_agent
from benchmarks.common import Env, median, new_thread_id, now
from langgraph_rollback import (
    AsyncSqliteRollbackSaver,
    Effect,
    SqliteRollbackSaver,
    ToolRegistry,
    reversible,
)
from langgraph_rollback._declare import definition_of
from langgraph_rollback.core.record import record_flow
from langgraph_rollback.core.registry import ToolDefinition
from langgraph_rollback.core.task import TaskContext
from langgraph_rollback.drivers import run_async, run_sync

PAYLOAD_BYTES = 2048


def raw_commits(path: Path, synchronous: str, count: int) -> float:
    """Seconds per transaction of one ~2 KB insert, WAL mode."""
    blob = os.urandom(PAYLOAD_BYTES)
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as conn:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={synchronous}")
        conn.execute(
            "CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, payload BLOB)"
        )
        start = now()
        for _ in range(count):
            conn.execute("BEGIN")
            conn.execute("INSERT INTO t (payload) VALUES (?)", (blob,))
            conn.execute("COMMIT")
        return (now() - start) / count


class _Scope:
    """Stands for a task's preparation (weakly referenced by call ordinals)."""


def _definition(registry: ToolRegistry) -> ToolDefinition:
    def delete(effect: Effect) -> None:
        return None

    @reversible(undo=delete, registry=registry)
    def write_file(path: str, content: str) -> str:
        return path

    found = definition_of(write_file)
    assert found is not None
    return found


def _context(saver: Any) -> TaskContext:
    checkpoint_id = "1f000000-0000-6000-8000-000000000000"
    task_id = new_thread_id()
    return TaskContext(
        store=saver,
        thread_id=new_thread_id(),
        task_ns=f"tools:{task_id}",
        checkpoint_ns="",
        checkpoint_id=checkpoint_id,
        root_checkpoint_id=checkpoint_id,
        task_id=task_id,
        run_id=None,
        attempt=1,
        scope=_Scope(),
    )


def _flow(ctx: TaskContext, definition: ToolDefinition, i: int) -> Any:
    return record_flow(
        ctx,
        definition,
        {"path": f"file-{i}.txt", "content": CONTENT},
        tool_call_id=f"call-{i}",
        serde=ctx.store.ledger_codec,
    )


def record_sync(path: Path, count: int) -> dict[str, float]:
    """Seconds and commits per recorded effect, `SqliteRollbackSaver`."""
    registry = ToolRegistry()
    definition = _definition(registry)
    commits = [0]

    def trace(statement: str) -> None:
        if statement.strip().upper() == "COMMIT":
            commits[0] += 1

    with contextlib.closing(sqlite3.connect(path, check_same_thread=False)) as conn:
        saver = SqliteRollbackSaver(conn, registry=registry)
        saver.setup()
        ctx = _context(saver)
        for i in range(3):  # warm
            run_sync(_flow(ctx, definition, -1 - i), saver, perform=lambda: "ok")
        conn.set_trace_callback(trace)
        start = now()
        for i in range(count):
            run_sync(_flow(ctx, definition, i), saver, perform=lambda: "ok")
        with saver.cursor():  # commits the last outcome
            pass
        seconds = (now() - start) / count
        conn.set_trace_callback(None)
        (sync_mode,) = conn.execute("PRAGMA synchronous").fetchone()
        (journal,) = conn.execute("PRAGMA journal_mode").fetchone()
    return {
        "seconds": seconds,
        "commits_per_effect": commits[0] / count,
        "synchronous": {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}[sync_mode],
        "journal_mode": str(journal).upper(),
    }


async def _record_async(path: Path, count: int) -> dict[str, float]:
    registry = ToolRegistry()
    definition = _definition(registry)
    commits = [0]

    def trace(statement: str) -> None:
        if statement.strip().upper() == "COMMIT":
            commits[0] += 1

    async def perform() -> str:
        return "ok"

    async with aiosqlite.connect(path) as conn:
        saver = AsyncSqliteRollbackSaver(conn, registry=registry)
        await saver.setup()
        ctx = _context(saver)
        for i in range(3):
            await run_async(_flow(ctx, definition, -1 - i), saver, perform=perform)
        await conn.set_trace_callback(trace)
        start = now()
        for i in range(count):
            await run_async(_flow(ctx, definition, i), saver, perform=perform)
        async with saver.lock:  # commits the last outcome
            await saver._commit_before_read()
        seconds = (now() - start) / count
        await conn.set_trace_callback(None)
    return {"seconds": seconds, "commits_per_effect": commits[0] / count}


def record_async(path: Path, count: int) -> dict[str, float]:
    """Seconds and commits per recorded effect, `AsyncSqliteRollbackSaver`."""
    return asyncio.run(_record_async(path, count))


def loop_commits(env: Env, steps: int) -> dict[str, Any]:
    """COMMITs per step of the section-1 agent loop (sqlite, durability sync)."""
    from langchain_core.messages import HumanMessage
    from langgraph.checkpoint.sqlite import SqliteSaver

    out: dict[str, Any] = {}
    for variant in ("upstream", "ours"):
        directory = env.tmpdir("commits-")
        registry = ToolRegistry()
        builder = build_agent(directory / "files", registry, steps)
        commits = [0]

        def trace(statement: str, commits: list[int] = commits) -> None:
            if statement.strip().upper() == "COMMIT":
                commits[0] += 1

        with contextlib.closing(
            sqlite3.connect(directory / "db.sqlite", check_same_thread=False)
        ) as conn:
            saver = (
                SqliteRollbackSaver(conn, registry=registry)
                if variant == "ours"
                else SqliteSaver(conn)
            )
            saver.setup()
            conn.set_trace_callback(trace)
            graph = builder.compile(checkpointer=saver)
            graph.invoke(
                {"messages": [HumanMessage("start", id="human-0")], "step": 0},
                {
                    "configurable": {"thread_id": "t"},
                    "recursion_limit": 2 * steps + 10,
                },
                durability="sync",
            )
            conn.set_trace_callback(None)
        out[variant] = commits[0] / steps
    out["extra_per_effect"] = out["ours"] - out["upstream"]
    return out


def bench(
    env: Env, *, count: int, repeats: int, loop_steps: int, log: Any = print
) -> dict[str, Any]:
    """The floor and the recording cost, interleaved per repeat."""
    samples: dict[str, list[float]] = {
        "floor_full": [],
        "floor_normal": [],
        "record_sync": [],
        "record_async": [],
    }
    commits: dict[str, list[float]] = {"record_sync": [], "record_async": []}
    info: dict[str, Any] = {}
    for repeat in range(repeats):
        directory = env.tmpdir("recording-")
        samples["floor_full"].append(
            raw_commits(directory / f"full-{repeat}.sqlite", "FULL", count)
        )
        samples["floor_normal"].append(
            raw_commits(directory / f"normal-{repeat}.sqlite", "NORMAL", count)
        )
        sync = record_sync(directory / f"sync-{repeat}.sqlite", count)
        samples["record_sync"].append(sync["seconds"])
        commits["record_sync"].append(sync["commits_per_effect"])
        info = {
            "synchronous": sync["synchronous"],
            "journal_mode": sync["journal_mode"],
        }
        aio = record_async(directory / f"aio-{repeat}.sqlite", count)
        samples["record_async"].append(aio["seconds"])
        commits["record_async"].append(aio["commits_per_effect"])
        log(f"  recording: repeat {repeat + 1}/{repeats}")
    us = {k: median(v) * 1e6 for k, v in samples.items()}
    ratios = {
        name: median(
            [r / f for r, f in zip(samples[name], samples["floor_full"], strict=True)]
        )
        for name in ("record_sync", "record_async")
    }
    return {
        "method": {
            "floor": f"raw sqlite3, WAL, one {PAYLOAD_BYTES}-byte row per "
            "transaction; synchronous FULL and NORMAL",
            "recording": "record_flow (intent, no-op call, outcome) on a file; "
            "commits counted with set_trace_callback",
            "effects_per_repeat": count,
        },
        "saver_sqlite_settings": info,
        "us_per_commit_floor_full": us["floor_full"],
        "us_per_commit_floor_normal": us["floor_normal"],
        "us_per_effect_sync": us["record_sync"],
        "us_per_effect_async": us["record_async"],
        "ratio_to_floor_full_sync": ratios["record_sync"],
        "ratio_to_floor_full_async": ratios["record_async"],
        "commits_per_effect_sync": median(commits["record_sync"]),
        "commits_per_effect_async": median(commits["record_async"]),
        "agent_loop_commits_per_step": loop_commits(env, loop_steps),
        "samples_s": samples,
    }
