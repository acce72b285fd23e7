"""Section 1: an agent-like loop, our saver against the upstream saver it extends.

The graph is what a tool-calling agent is: a model node that emits one tool
call per turn and a `ToolNode` (`langgraph.prebuilt`) that runs it, in a loop
of N steps. The model is a deterministic function (no LLM). The tool writes a
real 200-byte file in a temporary directory and is declared
`@reversible(undo=...)`; under our saver each call is recorded in the ledger
(an intent before the write, the outcome after it), under the upstream saver
the same declared tool runs unrecorded, as it does under any checkpointer
that is not a rollback saver.

The model node keeps the last two messages (it removes older ones), so each
checkpoint has the same size at step 10 and at step 1,000: a growing message
list would measure LangGraph's serializer (quadratic in steps), not the saver.

Peak RSS is measured in a child process per configuration: `VmHWM` of
/proc/self/status right after the run, before the ledger is read back for
the sanity check (`ru_maxrss` would carry the parent's peak over exec on
Linux). The run's own share is that peak less the current RSS (`VmRSS`)
after a 3-step warm-up loop of the same kind.
"""

from __future__ import annotations

import asyncio
import json
import resource
import shutil
import subprocess
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypedDict

from langchain_core.messages import AIMessage, AnyMessage, HumanMessage, RemoveMessage
from langchain_core.tools import tool
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.prebuilt import ToolNode

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
    store_sizes,
)
from langgraph_rollback import Effect, ToolRegistry, UnrecordedCallWarning, reversible

# The upstream baseline runs the same declared tools under LangGraph's own
# savers, unrecorded on purpose: the comparison is of the savers.
warnings.filterwarnings("ignore", category=UnrecordedCallWarning)

CONTENT = "x" * 200


class AgentState(TypedDict):
    messages: Annotated[list[AnyMessage], add_messages]
    step: int


def build_agent(
    workdir: Path,
    registry: ToolRegistry,
    steps: int,
    undo: Callable[[Effect], Any] | None = None,
) -> Any:
    """The agent graph (uncompiled): model -> tools -> model ... for `steps` turns.

    `undo` replaces the tool's inverse (which deletes the file).
    """
    workdir.mkdir(parents=True, exist_ok=True)

    def delete_file(effect: Effect) -> str:
        (workdir / effect.args["path"]).unlink(missing_ok=True)
        return f"deleted {effect.args['path']}"

    @reversible(undo=undo or delete_file, registry=registry)
    @tool
    def write_file(path: str, content: str) -> str:
        """Write a text file in the workspace."""
        (workdir / path).write_text(content)
        return f"wrote {len(content)} bytes to {path}"

    def model(state: AgentState) -> dict[str, Any]:
        step = state.get("step", 0)
        old = [RemoveMessage(id=m.id) for m in state["messages"][:-2] if m.id]
        if step >= steps:
            return {"messages": [*old, AIMessage("done", id="ai-done")]}
        call = {
            "name": "write_file",
            "args": {"path": f"file-{step}.txt", "content": CONTENT},
            "id": f"call-{step}",
        }
        message = AIMessage("", tool_calls=[call], id=f"ai-{step}")
        return {"messages": [*old, message], "step": step + 1}

    def route(state: AgentState) -> str:
        last = state["messages"][-1]
        return "tools" if getattr(last, "tool_calls", None) else END

    builder = StateGraph(AgentState)
    builder.add_node("model", model)
    builder.add_node("tools", ToolNode([write_file]))
    builder.add_edge(START, "model")
    builder.add_conditional_edges("model", route, ["tools", END])
    builder.add_edge("tools", "model")
    return builder


def _inputs() -> dict[str, Any]:
    return {"messages": [HumanMessage("start", id="human-0")], "step": 0}


def _config(steps: int) -> dict[str, Any]:
    return {
        "configurable": {"thread_id": new_thread_id()},
        "recursion_limit": 2 * steps + 10,
    }


def _effects_summary(effects: list[Effect] | None) -> dict[str, Any]:
    if effects is None:
        return {"effects": None}
    return {
        "effects": len(effects),
        "applied": sum(1 for e in effects if e.status.value == "applied"),
    }


def _run_sync(
    kind: str, variant: str, where: str, steps: int, durability: str, workdir: Path
) -> tuple[float, float, list[Effect] | None]:
    registry = ToolRegistry()
    builder = build_agent(workdir, registry, steps)
    with open_sync_saver(kind, variant, where, registry) as saver:
        graph = builder.compile(checkpointer=saver)
        config = _config(steps)
        start = now()
        graph.invoke(_inputs(), config, durability=durability)
        seconds = now() - start
        peak = _rss_mb()
        effects = saver.list_effects(config) if variant == "ours" else None
    return seconds, peak, effects


async def _run_async(
    kind: str, variant: str, where: str, steps: int, durability: str, workdir: Path
) -> tuple[float, float, list[Effect] | None]:
    registry = ToolRegistry()
    builder = build_agent(workdir, registry, steps)
    async with open_async_saver(kind, variant, where, registry) as saver:
        graph = builder.compile(checkpointer=saver)
        config = _config(steps)
        start = now()
        await graph.ainvoke(_inputs(), config, durability=durability)
        seconds = now() - start
        peak = _rss_mb()
        effects = await saver.alist_effects(config) if variant == "ours" else None
    return seconds, peak, effects


def run_once(
    env: Env, kind: str, variant: str, steps: int, durability: str
) -> dict[str, Any]:
    """One timed run on a fresh store; the seconds, sizes and a sanity check.

    `peak_rss_mb` is the process's peak RSS right after the run, before the
    ledger is read back for the check.
    """
    workdir = env.tmpdir("agent-files-")
    try:
        with fresh_store(kind, env, "agent-") as where:
            if is_async(kind):
                seconds, peak, effects = asyncio.run(
                    _run_async(kind, variant, where, steps, durability, workdir)
                )
            else:
                seconds, peak, effects = _run_sync(
                    kind, variant, where, steps, durability, workdir
                )
            sizes = store_sizes(kind, where)
        files = sum(1 for _ in workdir.iterdir())
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    if files != steps:
        raise AssertionError(f"{kind}/{variant}: {files} files after {steps} steps")
    summary = _effects_summary(effects)
    if variant == "ours" and summary["applied"] != steps:
        raise AssertionError(f"{kind}: {summary} recorded after {steps} steps")
    return {"seconds": seconds, "peak_rss_mb": peak, **sizes, **summary}


def _figures(runs: list[dict[str, Any]], steps: int) -> dict[str, Any]:
    seconds = [r["seconds"] for r in runs]
    med = median(seconds)
    first = runs[0]
    ledger = first.get("ledger_bytes")
    return {
        "seconds": seconds,
        "median_seconds": med,
        "per_step_ms": med / steps * 1000,
        "steps_per_s": steps / med,
        "db_bytes": first.get("db_bytes"),
        "ledger_bytes": ledger if first.get("effects") is not None else None,
        "ledger_bytes_per_effect": (
            ledger / steps if ledger and first.get("effects") is not None else None
        ),
        "effects": first.get("effects"),
    }


def bench(
    env: Env,
    *,
    steps_list: tuple[int, ...],
    repeats: dict[int, int],
    durabilities: tuple[str, ...] = ("sync", "async"),
    log: Any = print,
) -> dict[str, Any]:
    """Every (kind, durability, steps) pair, interleaved."""
    kinds = env.kinds
    for kind in kinds:  # warm-up: imports, first connections, code paths
        for variant in ("upstream", "ours"):
            run_once(env, kind, variant, 3, "sync")
    rows = []
    for steps in steps_list:
        samples: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
        for repeat in range(repeats[steps]):
            for kind in kinds:
                for durability in durabilities:
                    for variant in alternate(repeat):
                        run = run_once(env, kind, variant, steps, durability)
                        samples.setdefault((kind, durability, variant), []).append(run)
            log(f"  agent loop: {steps} steps, repeat {repeat + 1}/{repeats[steps]}")
        for kind in kinds:
            for durability in durabilities:
                up = samples[(kind, durability, "upstream")]
                ours = samples[(kind, durability, "ours")]
                rows.append(
                    {
                        "kind": kind,
                        "durability": durability,
                        "steps": steps,
                        "repeats": len(up),
                        "upstream": _figures(up, steps),
                        "ours": _figures(ours, steps),
                        "ratio": paired_ratio(
                            [r["seconds"] for r in ours], [r["seconds"] for r in up]
                        ),
                    }
                )
    return {
        "method": {
            "graph": "model node (deterministic) -> ToolNode -> model, one tool "
            "call per step; the tool writes a 200-byte file and is @reversible",
            "timing": "wall time of one invoke/ainvoke (including the final "
            "drain of queued checkpoint writes), on a fresh store per run; "
            "median over repeats; ratio = median of paired ours/upstream runs, "
            "pairs interleaved (order alternating) in one process",
            "rss": "peak RSS (VmHWM) of a child process that runs one loop; "
            "baseline = its current RSS (VmRSS) after a 3-step warm-up loop of "
            "the same kind (imports, lazily built schemas), before the run",
            "ledger_size": "SQLite: dbstat pages of lgrb_effects and its indexes; "
            "PostgreSQL: pg_total_relation_size('lgrb_effects') after VACUUM",
        },
        "runs": rows,
    }


def bench_rss(
    env: Env,
    steps: int,
    durabilities: tuple[str, ...] = ("sync",),
    log: Any = print,
) -> list[dict[str, Any]]:
    """Peak RSS of one loop per (kind, durability, variant), each in a child."""
    rss = []
    for kind in env.kinds:
        for durability in durabilities:
            pair = {
                variant: rss_child(env, kind, variant, steps, durability)
                for variant in ("upstream", "ours")
            }
            rss.append(
                {
                    "kind": kind,
                    "durability": durability,
                    "steps": steps,
                    **pair,
                    "ratio": pair["ours"]["peak_rss_mb"]
                    / pair["upstream"]["peak_rss_mb"],
                }
            )
    log("  agent loop: peak RSS measured")
    return rss


def rss_child(
    env: Env, kind: str, variant: str, steps: int, durability: str
) -> dict[str, Any]:
    """Run one loop in a child process; its peak and baseline RSS in MB."""
    spec = {
        "kind": kind,
        "variant": variant,
        "steps": steps,
        "durability": durability,
        "root": str(env.root),
        "pg_server": env.pg_server,
    }
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.agent", json.dumps(spec)],
        cwd=Path(__file__).resolve().parents[1],
        check=True,
        capture_output=True,
        text=True,
        timeout=600,
    )
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def _status_mb(field: str) -> float | None:
    """A `/proc/self/status` figure (VmHWM, VmRSS) in MB, or None without /proc."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def _rss_mb() -> float:
    """Peak RSS of this process so far, in MB.

    `VmHWM` where /proc has it: on Linux, `ru_maxrss` of a process started
    with fork/vfork + exec keeps the parent's peak (the benchmark's own), so
    it only serves where /proc is missing.
    """
    peak = _status_mb("VmHWM")
    if peak is not None:
        return peak
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _current_rss_mb() -> float:
    """Current RSS in MB (VmRSS), or the peak where /proc is missing."""
    current = _status_mb("VmRSS")
    return current if current is not None else _rss_mb()


def _child(spec: dict[str, Any]) -> None:
    env = Env(root=Path(spec["root"]), quick=True, pg_server=spec["pg_server"])
    run_once(env, spec["kind"], spec["variant"], 3, spec["durability"])
    baseline = _current_rss_mb()
    run = run_once(
        env, spec["kind"], spec["variant"], spec["steps"], spec["durability"]
    )
    peak = run["peak_rss_mb"]
    print(
        json.dumps(
            {
                "peak_rss_mb": peak,
                "baseline_rss_mb": baseline,
                "run_rss_mb": peak - baseline,
                "seconds": run["seconds"],
            }
        )
    )


if __name__ == "__main__":
    _child(json.loads(sys.argv[1]))
