"""The graph task a declared tool runs in, and the guard policy.

`TaskContext` is plain data: `langgraph_rollback._langgraph.current_task()`
reads it off LangGraph's run (the one place that touches its internals), and
the recording flow (`core.record`) takes it from there.
"""

from __future__ import annotations

import threading
import weakref
from dataclasses import dataclass
from typing import Any, Literal

from langgraph_rollback.core.store import RollbackStore

__all__ = ["GUARD_MODES", "GuardMode", "TaskContext", "approved"]

GuardMode = Literal["allow", "ask", "block"]
"""What happens when an irreversible (or undeclared) tool is called."""
GUARD_MODES: tuple[GuardMode, ...] = ("allow", "ask", "block")


@dataclass(frozen=True, slots=True)
class TaskContext:
    """The graph task a declared tool is running in."""

    store: RollbackStore
    """The run's rollback saver."""
    thread_id: str
    task_ns: str
    checkpoint_ns: str
    checkpoint_id: str
    root_checkpoint_id: str
    task_id: str
    run_id: str | None
    attempt: int
    scope: Any
    """An object that lives exactly as long as the task's preparation."""
    guard: GuardMode = "allow"
    """The guard policy for irreversible tools."""
    run_checkpoint_id: str | None = None
    """The root checkpoint the run was started from, when the caller named one
    (`invoke(..., config_with_checkpoint_id)`: a fork or an explicit resume)."""
    durability: str | None = None
    """The run's durability mode ("sync", "async", "exit"), when known."""
    owner: str | None = None
    """This process (host, pid, start time), recorded as an intent's owner."""
    resumed: bool = False
    """The task resumes an `interrupt()` (`Command(resume=...)`)."""
    digest_key: bytes | None = None
    """The database's key for argument digests (when payloads are encrypted)."""
    legacy_keys: bool = False
    """The ledger may hold call keys of the format before `v2:`."""
    unkeyed_keys: bool = False
    """The ledger may hold `v2:` keys made before its digest key."""
    in_flight_wait: float = 10.0
    """Seconds a replay waits for an earlier attempt still running here."""
    inside: str | None = None
    """The container effect (a git workspace step) whose forward call this
    call runs in, if any."""
    step: int | None = None
    """The graph step the task runs in (LangGraph's `langgraph_step`)."""
    task_path: str | None = None
    """The task's path within its step (LangGraph's `langgraph_path`: the
    node it pulls, or the index of the `Send` that pushed it)."""
    user: str | None = None
    """The Agent Server's authenticated user running the graph, if any (for
    the audit trail)."""

    def next_ordinal(self, key: str) -> int:
        """Return how many calls with this key this task attempt made before."""
        with _ORDINALS_LOCK:
            try:
                per_attempt = _ORDINALS[self.scope]
            except KeyError:
                per_attempt = _ORDINALS[self.scope] = {}
            counters = per_attempt.setdefault(self.attempt, {})
            n = counters.get(key, 0)
            counters[key] = n + 1
            return n


# Per-task-preparation call counters: scope -> attempt -> call key -> count.
# Weak keys, so a finished task's counters go with it.
_ORDINALS: weakref.WeakKeyDictionary[Any, dict[int, dict[str, int]]] = (
    weakref.WeakKeyDictionary()
)
_ORDINALS_LOCK = threading.Lock()


def approved(answer: Any) -> bool:
    """Whether a human's answer to an `interrupt()` question means yes."""
    if isinstance(answer, dict):
        answer = answer.get("approve", answer.get("approved", False))
    if isinstance(answer, str):
        return answer.strip().lower() in {"approve", "approved", "yes", "y", "true"}
    return answer is True
