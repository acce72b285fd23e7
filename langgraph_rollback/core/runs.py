"""The relative targets: where a run started (`run_start`) and where a node
last ran (`before_node`), found on the head's path (`core.targets` parses
them and resolves the others)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from langchain_core.runnables import RunnableConfig

from langgraph_rollback._errors import CheckpointNotFoundError, InvalidTargetError
from langgraph_rollback.core.config import checkpoint_config
from langgraph_rollback.core.ops import CheckpointLink, Flow, ReadCheckpoint, do
from langgraph_rollback.core.voice import Voice, say

__all__ = ["NULL_TASK_ID", "RESUME", "node_target", "run_target"]


def run_target(
    run_id: str | None, chain: list[CheckpointLink], thread_id: str, voice: Voice
) -> Flow[str]:
    """The start of the latest input (run_id None) or of run `run_id` on the path."""
    if run_id is not None:
        return _named_run_target(run_id, chain, thread_id, voice)
    for i, link in enumerate(chain):
        if link.source == "input":
            # The first checkpoint after the input was applied (or the input
            # checkpoint itself, when nothing came after it).
            return chain[max(i - 1, 0)].checkpoint_id
        if i + 1 < len(chain) and _gap(chain[i + 1], link):
            # Steps were not stored (durability "exit"): the run started there.
            return chain[i + 1].checkpoint_id
        if i + 1 < len(chain) and _other_run(chain[i + 1], link):
            parent = chain[i + 1]
            found = yield from do(
                ReadCheckpoint(checkpoint_config(thread_id, parent.checkpoint_id))
            )
            if found is not None and _command_input(found.pending_writes or ()):
                # A run started with `Command(update=..., goto=...)`: its input
                # was written onto the checkpoint it resumed, with no "input"
                # checkpoint of its own.
                return parent.checkpoint_id
    raise CheckpointNotFoundError(
        f"Walking back from the head of thread {thread_id!r}, the latest run "
        "started before any stored checkpoint (its steps were not stored, e.g. "
        "durability 'exit' on the thread's first run). Fix: "
        + say(voice, "roll back to='first'", "use --to first", 'send "to": "first"')
        + ".",
        checkpoint_id="run_start",
        thread_id=thread_id,
    )


def _named_run_target(
    run_id: str, chain: list[CheckpointLink], thread_id: str, voice: Voice
) -> str:
    positions = [i for i, link in enumerate(chain) if link.run_id == run_id]
    if not positions:
        raise CheckpointNotFoundError(
            f"No checkpoint on the path of thread {thread_id!r} was written by run "
            f"{run_id!r} (runs are named when the caller passes a run_id, as the "
            "Agent Server does). Fix: "
            + say(
                voice,
                "pass the run_id an effect of that run carries (effect.run_id), or "
                "to=run_start() for the latest run",
                "use the run id of an effect (`langgraph-rollback effects`), or "
                "--to run_start for the latest run",
                "send the run id of an effect (GET /threads/<id>/effects), or "
                '"run_start" for the latest run',
            )
            + ".",
            checkpoint_id=f"run_start:{run_id}",
            thread_id=thread_id,
        )
    oldest = positions[-1]
    if chain[oldest].source == "input" and oldest > 0:
        return chain[oldest - 1].checkpoint_id
    if oldest + 1 < len(chain):
        return chain[oldest + 1].checkpoint_id
    raise CheckpointNotFoundError(
        f"Run {run_id!r} started before thread {thread_id!r} stored any "
        "checkpoint. Fix: "
        + say(voice, "roll back to='first'", "use --to first", 'send "to": "first"')
        + ".",
        checkpoint_id=f"run_start:{run_id}",
        thread_id=thread_id,
    )


NULL_TASK_ID = "00000000-0000-0000-0000-000000000000"
"""The task id LangGraph writes a `Command` input under
(`langgraph._internal._constants.NULL_TASK_ID`; a unit test pins it)."""
RESUME = "__resume__"
"""The channel of a `Command(resume=...)` answer (`..._constants.RESUME`)."""


def _other_run(parent: CheckpointLink, child: CheckpointLink) -> bool:
    """Whether two named runs wrote `parent` and `child`."""
    return None not in (parent.run_id, child.run_id) and parent.run_id != child.run_id


def _command_input(writes: Sequence[tuple[str, str, Any]]) -> bool:
    """Whether a checkpoint's pending writes are a new input given as a
    `Command(update=..., goto=...)`, not a resume of the same input."""
    channels = {channel for task, channel, _ in writes if task == NULL_TASK_ID}
    return bool(channels) and RESUME not in channels


def _gap(parent: CheckpointLink, child: CheckpointLink) -> bool:
    """Whether steps between `parent` and `child` were never stored."""
    if parent.step is None or child.step is None:
        return False
    return child.step - parent.step > 1 and child.source == "loop"


def node_target(name: str, thread_id: str, head: str, voice: Voice) -> Flow[str]:
    """The nearest checkpoint whose next step ran node `name` (walking back)."""
    child: Any = None
    node: str | None = None
    ran: set[str] = set()
    current: RunnableConfig | None = checkpoint_config(thread_id, head)
    while current is not None:
        found = yield from do(ReadCheckpoint(current))
        if found is None:
            break
        ran.update(n for n in found.checkpoint["versions_seen"] if n[:2] != "__")
        if child is not None:
            seen_after = child.checkpoint["versions_seen"]
            node = node or _node_name(name, seen_after)
            if node is not None:
                here = found.checkpoint["versions_seen"].get(node)
                after = seen_after.get(node)
                if after is not None and after != here:
                    return str(found.config["configurable"]["checkpoint_id"])
        child = found
        current = found.parent_config
    raise CheckpointNotFoundError(
        f"Walking back from checkpoint {head!r} of thread {thread_id!r}, no "
        f"checkpoint ran node {name!r}{_nodes_that_ran(ran)}. A node inside a "
        "subgraph is not a target: its subgraph runs as one node of the root "
        "graph. Fix: check the node name (use the node that runs the subgraph; "
        "nodes started with Send are not found this way), or "
        + say(
            voice,
            "pass a checkpoint from graph.get_state_history(config)",
            "pass a checkpoint id from `langgraph-rollback checkpoints`",
            "send a checkpoint id from GET /threads/<id>/history",
        )
        + ".",
        checkpoint_id=f"before_node:{name}",
        thread_id=thread_id,
    )


def _nodes_that_ran(ran: set[str]) -> str:
    if not ran:
        return ""
    return (
        " (the root graph's nodes that ran: " + ", ".join(map(repr, sorted(ran))) + ")"
    )


def _node_name(name: str, seen: Mapping[str, Any]) -> str | None:
    """`name` as the graph spells it: exact, else the one case-insensitive match."""
    if name in seen:
        return name
    matches = sorted(n for n in seen if n.casefold() == name.casefold())
    if len(matches) > 1:
        raise InvalidTargetError(
            f"Node name {name!r} matches {', '.join(repr(m) for m in matches)}, "
            "which differ only in case. Fix: spell it exactly.",
            target=name,
        )
    return matches[0] if matches else None
