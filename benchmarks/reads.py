"""Section 5: checkpoint reads, our savers against upstream's, interleaved.

One thread of N checkpoints (10,000 in the full run; each with one pending
write) is written once per store: a SQLite file read by the sqlite and
aio_sqlite pairs, a PostgreSQL database read by the postgres and
aio_postgres pairs; each in-memory saver gets its own copy. Both savers of a
pair are open at once on the same store and take turns (order alternating
per repeat), so they read the same data under the same conditions.

Operations: `get_tuple` of the latest checkpoint and of a checkpoint by id
(the same random sequence of ids for both), each timed over a batch of calls;
and one `list` over the whole thread (`aget_tuple`/`alist` for the async
kinds).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Callable
from typing import Any

from benchmarks.common import (
    Env,
    alternate,
    fresh_store,
    is_async,
    median,
    new_thread_id,
    now,
    open_async_saver,
    open_sync_saver,
    paired_ratio,
)
from benchmarks.fixtures import chain, fill_sync, pg_thread, sqlite_thread
from langgraph_rollback import ToolRegistry

OPS = ("get_tuple_latest", "get_tuple_by_id", "list_all")


def _config(thread_id: str, checkpoint_id: str | None = None) -> dict[str, Any]:
    configurable = {"thread_id": thread_id, "checkpoint_ns": ""}
    if checkpoint_id is not None:
        configurable["checkpoint_id"] = checkpoint_id
    return {"configurable": configurable}


def _sync_ops(
    saver: Any, thread_id: str, ids: list[str], batch: int, total: int
) -> dict[str, Callable[[], float]]:
    latest = _config(thread_id)
    by_id = [_config(thread_id, i) for i in ids]

    def get_latest() -> float:
        start = now()
        for _ in range(batch):
            saver.get_tuple(latest)
        return (now() - start) / batch

    def get_by_id() -> float:
        start = now()
        for config in by_id:
            saver.get_tuple(config)
        return (now() - start) / len(by_id)

    def list_all() -> float:
        start = now()
        count = sum(1 for _ in saver.list(latest))
        assert count == total, count
        return now() - start

    return {
        "get_tuple_latest": get_latest,
        "get_tuple_by_id": get_by_id,
        "list_all": list_all,
    }


def _async_ops(
    saver: Any, thread_id: str, ids: list[str], batch: int, total: int
) -> dict[str, Callable[[], Any]]:
    latest = _config(thread_id)
    by_id = [_config(thread_id, i) for i in ids]

    async def get_latest() -> float:
        start = now()
        for _ in range(batch):
            await saver.aget_tuple(latest)
        return (now() - start) / batch

    async def get_by_id() -> float:
        start = now()
        for config in by_id:
            await saver.aget_tuple(config)
        return (now() - start) / len(by_id)

    async def list_all() -> float:
        start = now()
        count = 0
        async for _ in saver.alist(latest):
            count += 1
        assert count == total, count
        return now() - start

    return {
        "get_tuple_latest": get_latest,
        "get_tuple_by_id": get_by_id,
        "list_all": list_all,
    }


def _check_same(a: Any, b: Any) -> None:
    """Both savers of a pair return the same checkpoint and writes."""
    assert a is not None and b is not None
    assert a.checkpoint["id"] == b.checkpoint["id"]
    assert a.parent_config == b.parent_config
    assert [w[:2] for w in a.pending_writes or []] == [
        w[:2] for w in b.pending_writes or []
    ]


def _measure_sync(
    kind: str, where: str, thread_id: str, ids: list[str], spec: dict[str, Any]
) -> dict[str, dict[str, list[float]]]:
    samples: dict[str, dict[str, list[float]]] = {
        v: {op: [] for op in OPS} for v in ("upstream", "ours")
    }
    with contextlib.ExitStack() as stack:
        savers = {
            v: stack.enter_context(open_sync_saver(kind, v, where, ToolRegistry()))
            for v in ("ours", "upstream")
        }
        if kind == "memory":
            steps = list(chain(thread_id, len(ids)))
            for saver in savers.values():
                ids = fill_sync(saver, thread_id, len(steps), steps)
        rng = random.Random(8)
        picked = [rng.choice(ids) for _ in range(spec["batch"])]
        _check_same(
            savers["ours"].get_tuple(_config(thread_id, picked[0])),
            savers["upstream"].get_tuple(_config(thread_id, picked[0])),
        )
        ops = {
            v: _sync_ops(s, thread_id, picked, spec["batch"], len(ids))
            for v, s in savers.items()
        }
        for v in savers:  # warm
            for op in OPS[:2]:
                ops[v][op]()
        for repeat in range(spec["repeats"]):
            for op in OPS:
                if op == "list_all" and repeat >= spec["list_repeats"]:
                    continue
                for v in alternate(repeat):
                    samples[v][op].append(ops[v][op]())
    return samples


async def _measure_async(
    kind: str, where: str, thread_id: str, ids: list[str], spec: dict[str, Any]
) -> dict[str, dict[str, list[float]]]:
    samples: dict[str, dict[str, list[float]]] = {
        v: {op: [] for op in OPS} for v in ("upstream", "ours")
    }
    async with contextlib.AsyncExitStack() as stack:
        savers = {
            v: await stack.enter_async_context(
                open_async_saver(kind, v, where, ToolRegistry())
            )
            for v in ("ours", "upstream")
        }
        rng = random.Random(8)
        picked = [rng.choice(ids) for _ in range(spec["batch"])]
        _check_same(
            await savers["ours"].aget_tuple(_config(thread_id, picked[0])),
            await savers["upstream"].aget_tuple(_config(thread_id, picked[0])),
        )
        ops = {
            v: _async_ops(s, thread_id, picked, spec["batch"], len(ids))
            for v, s in savers.items()
        }
        for v in savers:
            for op in OPS[:2]:
                await ops[v][op]()
        for repeat in range(spec["repeats"]):
            for op in OPS:
                if op == "list_all" and repeat >= spec["list_repeats"]:
                    continue
                for v in alternate(repeat):
                    samples[v][op].append(await ops[v][op]())
    return samples


def bench(
    env: Env,
    *,
    checkpoints: int,
    batch: int,
    repeats: int,
    list_repeats: int,
    log: Any = print,
) -> dict[str, Any]:
    """Every kind's pair over the same thread, interleaved."""
    spec = {"batch": batch, "repeats": repeats, "list_repeats": list_repeats}
    results: list[dict[str, Any]] = []
    thread_id = new_thread_id()
    with contextlib.ExitStack() as stack:
        stores: dict[str, tuple[str, list[str]]] = {}
        for kind in env.kinds:
            family = {"aio_sqlite": "sqlite", "aio_postgres": "postgres"}.get(
                kind, kind
            )
            if family in stores:
                continue
            where = stack.enter_context(fresh_store(family, env, "reads-"))
            if family == "sqlite":
                ids = sqlite_thread(where, thread_id, checkpoints)
            elif family == "postgres":
                ids = pg_thread(where, thread_id, checkpoints)
            else:
                ids = [str(i) for i in range(checkpoints)]
            stores[family] = (where, ids)
        log("  reads: threads built")
        for kind in env.kinds:
            family = {"aio_sqlite": "sqlite", "aio_postgres": "postgres"}.get(
                kind, kind
            )
            where, ids = stores[family]
            if is_async(kind):
                samples = asyncio.run(_measure_async(kind, where, thread_id, ids, spec))
            else:
                samples = _measure_sync(kind, where, thread_id, ids, spec)
            for op in OPS:
                up, ours = samples["upstream"][op], samples["ours"][op]
                scale = 1e6 if op != "list_all" else 1e3
                results.append(
                    {
                        "kind": kind,
                        "op": op,
                        "unit": "us/call" if op != "list_all" else "ms/list",
                        "upstream": median(up) * scale,
                        "ours": median(ours) * scale,
                        "ratio": paired_ratio(ours, up),
                        "repeats": len(up),
                    }
                )
            log(f"  reads: {kind} done")
    return {
        "checkpoints": checkpoints,
        "method": {
            "get_tuple": f"mean of a batch of {batch} calls, median over repeats",
            "list": f"one full list of {checkpoints} checkpoints, median over repeats",
            "ratio": "median of paired ours/upstream samples, order alternating",
        },
        "results": results,
    }
