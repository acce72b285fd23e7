"""Rolling back from outside a graph: `rollback`, `plan_rollback` and their async twins.

Each is a short driver of one flow (`core.execute.rollback_flow`,
`core.plan.plan_flow`); the flows do the work, the same for both.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.pregel import Pregel

from langgraph_rollback._errors import InvalidConfigError
from langgraph_rollback._langgraph import find_saver
from langgraph_rollback._liveness import new_holder
from langgraph_rollback.core.audit import attributed, check_by
from langgraph_rollback.core.config import thread_id_of
from langgraph_rollback.core.execute import (
    OnConflict,
    OnFailure,
    OnIrreversible,
    Policies,
    rollback_flow,
)
from langgraph_rollback.core.ops import Flow, ReadHead, do
from langgraph_rollback.core.plan import RollbackPlan, plan_flow
from langgraph_rollback.core.registry import ToolRegistry
from langgraph_rollback.core.report import RollbackReport
from langgraph_rollback.core.targets import (
    Target,
    TargetSelector,
    Voice,
    parse_target,
    target_flow,
)
from langgraph_rollback.drivers import Progress, run_async, run_sync
from langgraph_rollback.savers.base import BaseRollbackSaver

__all__ = [
    "aplan_rollback",
    "arollback",
    "plan_rollback",
    "resolve",
    "rollback",
]

Graph = Pregel[Any, Any, Any, Any]
"""A compiled graph (`StateGraph.compile()` returns a subclass)."""


def plan_rollback(
    graph: Graph,
    config: RunnableConfig,
    *,
    to: Target,
    registry: ToolRegistry | None = None,
    voice: Voice = Voice.PYTHON,
) -> RollbackPlan:
    """What `rollback(graph, config, to=...)` would do, without doing anything.

    Args:
        graph: The compiled graph, whose checkpointer is a rollback saver.
        config: Names the thread (`configurable.thread_id`).
        to: Where to go back to (`core.targets`): a checkpoint id, config
            or `StateSnapshot`; `"first"`; `"run_start"` or `run_start(run_id)`;
            an effect (its id, an `Effect`, or a model `tool_call_id`): that
            effect and everything after it; `before_node("name")`.
        registry: Where to find inverses; defaults to the saver's.
        voice: Whose words error messages use for the fix (the CLI and the
            server pass their own).

    Raises:
        InvalidTargetError: `to` is not a target.
        CheckpointNotFoundError: The target is not in the thread.
        NotAnAncestorError: The target is not on the path behind the head.

    Example:
        ```python
        plan = plan_rollback(graph, config, to=snapshot)
        print(plan)   # one line per effect: undo / skip / conflict / ...
        ```
    """
    saver, flow = _planning(graph, config, to, registry, voice)
    return run_sync(flow, saver)


async def aplan_rollback(
    graph: Graph,
    config: RunnableConfig,
    *,
    to: Target,
    registry: ToolRegistry | None = None,
    voice: Voice = Voice.PYTHON,
) -> RollbackPlan:
    """Async `plan_rollback`."""
    saver, flow = _planning(graph, config, to, registry, voice)
    return await run_async(flow, saver)


def rollback(
    graph: Graph,
    config: RunnableConfig,
    *,
    to: Target,
    on_irreversible: OnIrreversible = "skip",
    on_conflict: OnConflict = "abort",
    on_failure: OnFailure = "stop",
    inverse_timeout: float | None = None,
    skip: Iterable[str] = (),
    registry: ToolRegistry | None = None,
    progress: Progress | None = None,
    voice: Voice = Voice.PYTHON,
    by: str | None = None,
    reason: str | None = None,
) -> RollbackReport:
    """Undo every effect after checkpoint `to`, newest first, then restore the state.

    The state is restored as a new head checkpoint that copies `to` (the
    history after `to` stays readable). Works with runs made with
    durability "sync" or "async"; with "exit", roll back whole runs (to the
    checkpoint a run started from).

    Args:
        graph: The compiled graph, whose checkpointer is a rollback saver.
        config: Names the thread (`configurable.thread_id`).
        to: Where to go back to, as for `plan_rollback`.
        on_irreversible: "skip" (default) leaves irreversible and undeclared
            effects and reports them; "abort" refuses before undoing anything.
        on_conflict: "abort" (default) refuses before undoing anything when a
            target changed since the agent touched it; "skip" leaves those
            effects; "force" undoes them anyway.
        on_failure: "stop" (default) stops at the first inverse that raises,
            leaves the state as it is and the ledger resumable (rolling back
            again continues there); "continue" runs the other inverses first.
        inverse_timeout: Seconds an inverse may take before it counts as failed.
        skip: Effect ids to leave alone, or a model's tool call ids (all the
            effects of that call); each must name something on the thread.
        registry: Where to find inverses; defaults to the saver's.
        progress: Called after each inverse with its `Effect` and whether it
            succeeded (the CLI shows progress with it).
        voice: Whose words error messages use for the fix.
        by: Who decided this rollback, kept in the audit trail; the Agent
            Server's authenticated user in `config` comes first (a different
            `by` is kept as "claimed_by"). Without either, it is not kept.
        reason: Why, kept with it.

    Returns:
        The `RollbackReport`; check `report.ok` (or call
        `report.raise_for_status()`).

    Raises:
        CheckpointNotFoundError: The target is not in the thread.
        NotAnAncestorError: The target is not on the path behind the head.
        RollbackInProgressError: Another rollback holds the thread.
        UnregisteredToolError: An effect's tool is not declared in the
            registry (raised before anything is undone).
        InvalidConfigError: `skip=` names nothing on the thread, or an
            effect inside a container the rollback undoes (raised before
            anything is undone).

    Example:
        ```python
        history = list(graph.get_state_history(config))
        report = rollback(graph, config, to=history[-2])
        print(report)
        ```
    """
    policies = _policies(
        config,
        on_irreversible,
        on_conflict,
        on_failure,
        inverse_timeout,
        skip,
        by,
        reason,
    )
    saver, flow = _rolling_back(graph, config, to, policies, registry, voice)
    return run_sync(flow, saver, graph=graph, progress=progress)


async def arollback(
    graph: Graph,
    config: RunnableConfig,
    *,
    to: Target,
    on_irreversible: OnIrreversible = "skip",
    on_conflict: OnConflict = "abort",
    on_failure: OnFailure = "stop",
    inverse_timeout: float | None = None,
    skip: Iterable[str] = (),
    registry: ToolRegistry | None = None,
    progress: Progress | None = None,
    voice: Voice = Voice.PYTHON,
    by: str | None = None,
    reason: str | None = None,
) -> RollbackReport:
    """Async `rollback`: async inverses are awaited, sync ones run in a thread."""
    policies = _policies(
        config,
        on_irreversible,
        on_conflict,
        on_failure,
        inverse_timeout,
        skip,
        by,
        reason,
    )
    saver, flow = _rolling_back(graph, config, to, policies, registry, voice)
    return await run_async(flow, saver, graph=graph, progress=progress)


def _policies(
    config: RunnableConfig,
    on_irreversible: OnIrreversible,
    on_conflict: OnConflict,
    on_failure: OnFailure,
    inverse_timeout: float | None,
    skip: Iterable[str],
    by: str | None,
    reason: str | None,
) -> Policies:
    check_by(by, reason)
    configurable = (config or {}).get("configurable") or {}
    who, claimed_by = attributed(by, configurable)
    policies = Policies(
        on_irreversible,
        on_conflict,
        on_failure,
        inverse_timeout,
        requested_by=who,
        claimed_by=claimed_by,
    )
    return policies.with_skip(skip, by=who, reason=reason)


def _planning(
    graph: Graph,
    config: RunnableConfig,
    to: Target,
    registry: ToolRegistry | None,
    voice: Voice,
) -> tuple[BaseRollbackSaver, Flow[RollbackPlan]]:
    saver, thread_id, selector = resolve(graph, config, to, voice=voice)
    registry = registry if registry is not None else saver.registry

    def flow() -> Flow[RollbackPlan]:
        head = yield from do(ReadHead(thread_id))
        target = yield from target_flow(selector, thread_id, head=head, voice=voice)
        return (
            yield from plan_flow(
                thread_id,
                target,
                registry=registry,
                serde=saver.ledger_codec,
                head=head,
                voice=voice,
            )
        )

    return saver, flow()


def _rolling_back(
    graph: Graph,
    config: RunnableConfig,
    to: Target,
    policies: Policies,
    registry: ToolRegistry | None,
    voice: Voice,
) -> tuple[BaseRollbackSaver, Flow[RollbackReport]]:
    saver, thread_id, selector = resolve(graph, config, to, voice=voice)
    flow = rollback_flow(
        thread_id,
        selector,
        holder=new_holder(),
        policies=policies,
        registry=registry if registry is not None else saver.registry,
        serde=saver.ledger_codec,
        voice=voice,
    )
    return saver, flow


def resolve(
    graph: Graph, config: RunnableConfig, to: Target, *, voice: Voice = Voice.PYTHON
) -> tuple[BaseRollbackSaver, str, TargetSelector]:
    """The saver, thread id and target a rollback call names (not yet looked up).

    The saver is the graph's checkpointer, or the rollback saver it wraps
    (`_langgraph.find_saver`: the Agent Server's adapter keeps it in `_inner`).

    Raises:
        InvalidConfigError: The graph has no rollback saver, or the config
            names no thread.
        InvalidTargetError: `to` is not in the targets vocabulary.
        CheckpointNotFoundError: `to` is a config of another thread.
    """
    checkpointer = getattr(graph, "checkpointer", None)
    saver = find_saver(checkpointer)
    if saver is None:
        raise InvalidConfigError(
            f"The graph's checkpointer is {type(checkpointer).__name__}, not a rollback "
            "saver, so it has no ledger to roll back. Fix: compile the graph "
            "with one, e.g. `builder.compile(checkpointer=SqliteRollbackSaver"
            "(...))`."
        )
    thread_id = thread_id_of(config)
    return saver, thread_id, parse_target(to, thread_id=thread_id, voice=voice)
