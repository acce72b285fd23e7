"""The rollback plan: which effects lie after a checkpoint, and what to do with each.

`plan_flow` is I/O-free: it yields storage reads and observations (see
`_ops`) and returns a `RollbackPlan`. Planning has no side effects: it reads
checkpoint ids and parent ids (never whole checkpoints), the ledger rows in
the target's subtree, and calls `observe` functions, which only read.

What "after checkpoint X" means:

- walk `parent` links from the head up to X (or to a checkpoint a previous
  rollback restored as a copy of X); that walk is the *path*;
- an effect belongs to the checkpoint its outermost task started from (its
  `root_checkpoint_id`, so subgraph effects count), or, when that checkpoint
  was never persisted (durability "async" or "exit"), to the newest persisted
  checkpoint when its intent was written (`base_checkpoint_id`);
- effects belonging to a checkpoint on the path (X's own tasks included) are
  undone, newest first by `seq`, except that a container (a call that
  records the declared calls made inside it, such as a git workspace step)
  comes before the effects recorded inside it: its own actions finished
  after theirs;
- effects belonging to X's other descendants lie on abandoned branches: they
  are listed as orphans and left alone.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from langgraph.checkpoint.serde.base import SerializerProtocol
from pydantic import BaseModel, ConfigDict

from langgraph_rollback._errors import (
    CheckpointNotFoundError,
    EffectInFlightError,
    NotAnAncestorError,
)
from langgraph_rollback._models import Effect, EffectStatus
from langgraph_rollback.core.codec import same
from langgraph_rollback.core.decide import Decision, PlannedStep, decide, skip
from langgraph_rollback.core.ledger import LedgerRow, effect_from_row
from langgraph_rollback.core.ops import (
    AwaitCall,
    CheckpointLink,
    ExistingCheckpoints,
    FindCheckpoint,
    Flow,
    ReadAncestry,
    ReadHead,
    ReadSubtree,
    Select,
    do,
)
from langgraph_rollback.core.query import EffectQuery
from langgraph_rollback.core.registry import ToolRegistry
from langgraph_rollback.core.report import call_text, one_line
from langgraph_rollback.core.voice import Voice, on_path_fix

__all__ = [
    "THREAD_START",
    "UNPLACED",
    "Decision",
    "PlannedStep",
    "RollbackPlan",
    "plan_flow",
    "run_plan_flow",
]

THREAD_START = "first"
"""The target that is the thread's empty start, before its first run. It has
no checkpoint: rolling back to it undoes every effect of the thread (those
recorded before any checkpoint was stored included) and restores an empty
state. Reports name it "first", as the targets vocabulary does."""

UNPLACED = (
    "its checkpoints were deleted (pruned), so nothing tells whether it led to "
    "the current state; left as it is (undo it by hand if it should go)"
)
"""Why an effect whose checkpoints were deleted is left alone."""

_LIVE = frozenset(
    {
        EffectStatus.PENDING,
        EffectStatus.APPLIED,
        EffectStatus.COMPENSATING,
        EffectStatus.COMPENSATION_FAILED,
    }
)


class RollbackPlan(BaseModel):
    """What a rollback to `target_checkpoint_id` would do, computed without acting."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    thread_id: str
    target_checkpoint_id: str
    head_checkpoint_id: str
    path: list[str]
    """Checkpoint ids from the head back to the target (or its restored copy)."""
    reached_copy: str | None = None
    """The checkpoint on the path that a previous rollback restored as a copy
    of the target, when the walk met it instead of the target itself."""
    target_copies: list[str] = []
    """What a new copy of the target stands for: the target, and whatever it
    is itself a copy of."""
    steps: list[PlannedStep]
    """Every effect after the target on the path, newest first."""
    orphans: list[Effect]
    """Live effects on abandoned branches after the target, left alone."""
    unplaced: list[Effect] = []
    """Live effects after the target whose checkpoints were deleted (a
    `prune`): nothing tells which branch they were on, so they are left
    alone."""
    created_at: datetime

    @property
    def to_undo(self) -> list[PlannedStep]:
        """Steps whose inverse will run."""
        return [s for s in self.steps if s.decision is Decision.UNDO]

    @property
    def conflicts(self) -> list[PlannedStep]:
        """Steps whose target changed since the agent touched it."""
        return [s for s in self.steps if s.decision is Decision.CONFLICT]

    @property
    def skipped(self) -> list[PlannedStep]:
        """Steps left as they are."""
        return [s for s in self.steps if s.decision is Decision.SKIP]

    @property
    def already_compensated(self) -> list[PlannedStep]:
        """Steps an earlier rollback undid."""
        return [s for s in self.steps if s.decision is Decision.ALREADY_COMPENSATED]

    @property
    def nested(self) -> dict[str, frozenset[str]]:
        """Container effect id -> the effects on the plan recorded inside its call."""
        found: dict[str, set[str]] = {}
        for step in self.steps:
            if step.effect.inside is not None:
                found.setdefault(step.effect.inside, set()).add(step.effect.id)
        return {k: frozenset(v) for k, v in found.items()}

    @property
    def unresolved(self) -> list[PlannedStep]:
        """Steps whose outcome (of the call, or of an earlier inverse) is unknown."""
        return [s for s in self.steps if s.skip_kind == "unresolved"]

    @property
    def at_target(self) -> bool:
        """Whether the head already is the target (or a restored copy of it)."""
        return self.head_checkpoint_id in (
            self.target_checkpoint_id,
            self.reached_copy,
        )

    def __str__(self) -> str:
        lines = [
            f"Rollback plan for thread {self.thread_id!r}: back to checkpoint "
            f"{self.target_checkpoint_id} ({len(self.path)} checkpoint(s) on the "
            f"path, {len(self.steps)} effect(s) after it)."
        ]
        if self.reached_copy:
            lines.append(
                f"  (the path reaches {self.reached_copy}, an earlier rollback's "
                "copy of the target)"
            )
        for step in self.steps:
            lines.append(
                f"  {step.decision.value:<19} #{step.effect.seq} "
                f"{call_text(step.effect)}: {one_line(step.reason)}"
            )
        if not self.steps:
            lines.append("  nothing to undo")
        for effect in self.orphans:
            lines.append(
                f"  orphan              #{effect.seq} {call_text(effect)}: on an "
                "abandoned branch, left as it is"
            )
        for effect in self.unplaced:
            lines.append(
                f"  unplaced            #{effect.seq} {call_text(effect)}: {UNPLACED}"
            )
        return "\n".join(lines)


def plan_flow(
    thread_id: str,
    target: str,
    *,
    registry: ToolRegistry,
    serde: SerializerProtocol,
    head: str | None = None,
    voice: Voice = Voice.PYTHON,
    in_run: bool = False,
) -> Flow[RollbackPlan]:
    """Compute the plan to roll `thread_id` back to checkpoint `target`
    (`THREAD_START`: the thread's empty start, before its first run).

    Args:
        head: Where the walk starts; defaults to the thread's newest
            checkpoint. A rollback node passes the checkpoint its own task
            started from.
        in_run: The plan is made inside the run it rolls back (a rollback
            node), whose own calls may be in flight.

    Raises:
        CheckpointNotFoundError: `target` is not a root checkpoint of the
            thread (the error says which thread holds it, if any).
        NotAnAncestorError: `target` is in the thread but not on the head's path.
        EffectInFlightError: A call after the target may still be running
            (outside the run itself).
    """
    head, chain = yield from _walk(thread_id, target, head, voice)
    path = [link.checkpoint_id for link in chain]
    subtree = yield from do(ReadSubtree(thread_id, path[-1]))
    region = {link.checkpoint_id for link in subtree} | set(path)
    # The thread's first checkpoint is in the region: effects recorded before
    # any checkpoint was stored (no base) belong to it.
    from_start = any(link.parent_id is None for link in chain)
    start = target == THREAD_START
    # Every effect of the thread lies after its start, those whose
    # checkpoints were deleted included.
    anchors = None if start else tuple(sorted(region))
    query = EffectQuery(thread_id=thread_id, anchors=anchors, unanchored=from_start)
    rows = yield from do(Select(query))
    # An effect whose root checkpoint lies outside the region belongs to it
    # only when that checkpoint was never persisted (then its base counts).
    outside = {r.root_checkpoint_id for r in rows}
    outside |= {r.base_checkpoint_id for r in rows if r.base_checkpoint_id}
    persisted: set[str] = set()
    if outside - region:
        missing = sorted(outside - region)
        persisted = yield from do(ExistingCheckpoints(thread_id, missing))
    mine, orphans, unplaced = _assign(
        rows, path, region, persisted, from_start, start, serde
    )
    steps = yield from _decide_all(mine, registry, serde, in_run, voice)
    steps = _settled_by_containers(_containers_first(steps))
    last = chain[-1]
    return RollbackPlan(
        thread_id=thread_id,
        target_checkpoint_id=target,
        head_checkpoint_id=head,
        path=path,
        reached_copy=_reached_copy(last, target),
        target_copies=[target, *(c for c in last.copies if c != target)],
        steps=steps,
        orphans=orphans,
        unplaced=unplaced,
        created_at=datetime.now(UTC),
    )


def run_plan_flow(
    thread_id: str,
    run_id: str,
    *,
    registry: ToolRegistry,
    serde: SerializerProtocol,
) -> Flow[RollbackPlan]:
    """The plan undoing run `run_id`'s effects on a thread with no checkpoint
    to walk from (the run stored none, under durability "exit", or they were
    deleted): each effect the ledger records for that run, newest first,
    decided as on any plan. Its target and head are the thread's start."""
    rows = yield from do(Select(EffectQuery(thread_id=thread_id)))
    mine = [row for row in rows if row.run_id == run_id]
    steps = yield from _decide_all(mine, registry, serde, False, Voice.PYTHON)
    return RollbackPlan(
        thread_id=thread_id,
        target_checkpoint_id=THREAD_START,
        head_checkpoint_id=THREAD_START,
        path=[],
        steps=_settled_by_containers(_containers_first(steps)),
        orphans=[],
        created_at=datetime.now(UTC),
    )


def _containers_first(steps: list[PlannedStep]) -> list[PlannedStep]:
    """Newest first, each container before the effects recorded inside it
    (which have higher `seq`: their intents came after the container's)."""
    on_plan = {step.effect.id for step in steps}
    held: dict[str, list[PlannedStep]] = {}
    for step in steps:
        inside = step.effect.inside
        if inside is not None and inside in on_plan:
            held.setdefault(inside, []).append(step)
    ordered: list[PlannedStep] = []
    # Depth first with a stack, not a recursive closure: a closure that calls
    # itself is a reference cycle, which would keep the whole plan alive
    # until the garbage collector's next full pass.
    for step in steps:
        inside = step.effect.inside
        if inside is not None and inside in on_plan:
            continue
        stack = [step]
        while stack:
            current = stack.pop()
            ordered.append(current)
            stack.extend(reversed(held.get(current.effect.id, ())))
    return ordered


def _settled_by_containers(steps: list[PlannedStep]) -> list[PlannedStep]:
    """An effect recorded inside a container an earlier rollback undid, whose
    target reads as before the call: the container's inverse restored it
    (that rollback stopped before marking it), so it is already undone, not
    a conflict."""
    undone = {s.effect.id for s in steps if s.decision is Decision.ALREADY_COMPENSATED}
    settled: list[PlannedStep] = []
    for step in steps:
        effect = step.effect
        if (
            step.decision is Decision.CONFLICT
            and effect.inside in undone
            and step.observed
            and same(step.current, effect.before)
        ):
            step = PlannedStep(
                effect=effect,
                decision=Decision.ALREADY_COMPENSATED,
                reason="restored by its container's inverse in an earlier rollback",
                current=step.current,
                observed=True,
            )
        settled.append(step)
    return settled


def _reached_copy(last: CheckpointLink, target: str) -> str | None:
    """The earlier restored copy of the target the walk met, if it met one."""
    if last.checkpoint_id == target or not last.stands_for(target):
        return None
    return last.checkpoint_id


def _decide_all(
    rows: list[LedgerRow],
    registry: ToolRegistry,
    serde: SerializerProtocol,
    in_run: bool,
    voice: Voice,
) -> Flow[list[PlannedStep]]:
    """Each effect's decision, newest first; calls and inverses still running
    are found first."""
    steps: list[PlannedStep] = []
    predicted: dict[Any, Any] = {}
    for row in rows:
        effect = effect_from_row(row, serde)
        running = yield from _still_running(effect, in_run)
        if running is not None:
            steps.append(running)
            continue
        definition = registry.get(effect.tool)
        step = yield from decide(effect, definition, serde, predicted, voice)
        steps.append(step)
    return steps


def _still_running(effect: Effect, in_run: bool) -> Flow[PlannedStep | None]:
    """A step for an effect whose call or inverse may still be running.

    Raises:
        EffectInFlightError: Its forward call may still be running (outside
            the run itself): the plan could not say what it did.
    """
    if effect.status is EffectStatus.PENDING and not in_run:
        state = yield from do(AwaitCall(effect.id, effect.owner, 0))
        if state in ("running", "elsewhere"):
            raise EffectInFlightError(
                effect_id=effect.id,
                tool=effect.tool,
                thread_id=effect.thread_id,
                owner=effect.owner,
                rollback=True,
            )
    if effect.status is EffectStatus.COMPENSATING:
        state = yield from do(AwaitCall(f"undo:{effect.id}", effect.owner, 0))
        if state == "running":
            return skip(
                effect,
                "its inverse, started by an earlier rollback that gave up "
                "waiting for it, is still running; roll back again once it has "
                "ended (its outcome is recorded then)",
                "unresolved",
            )
    return None


def _walk(
    thread_id: str, target: str, head: str | None, voice: Voice
) -> Flow[tuple[str, list[CheckpointLink]]]:
    """The head, and the links from it back to the target (or a copy of it)."""
    if head is None:
        head = yield from do(ReadHead(thread_id))
        if head is None:
            owners = yield from do(FindCheckpoint(target))
            raise CheckpointNotFoundError(
                checkpoint_id=target, thread_id=thread_id, found_in=owners
            )
    chain = yield from do(ReadAncestry(thread_id, head, target))
    if not chain:
        raise CheckpointNotFoundError(
            f"Thread {thread_id!r} has no checkpoint {head!r} to start the walk "
            "from. Fix: run the graph with durability='sync' so each step's "
            "checkpoint is stored before the next one runs.",
            checkpoint_id=head,
            thread_id=thread_id,
        )
    if not chain[-1].stands_for(target) and target != THREAD_START:
        owners = yield from do(FindCheckpoint(target))
        if thread_id in owners:
            raise NotAnAncestorError(
                checkpoint_id=target,
                thread_id=thread_id,
                head_checkpoint_id=head,
                fix=None if voice is Voice.PYTHON else on_path_fix(voice),
            )
        raise CheckpointNotFoundError(
            checkpoint_id=target,
            thread_id=thread_id,
            found_in=[o for o in owners if o != thread_id],
        )
    return head, chain


def _assign(
    rows: list[LedgerRow],
    path: list[str],
    region: set[str],
    persisted: set[str],
    from_start: bool,
    start: bool,
    serde: SerializerProtocol,
) -> tuple[list[LedgerRow], list[Effect], list[Effect]]:
    """Split the rows into those on the path, live orphans, and live effects
    whose checkpoints were deleted (unplaced).

    With `start` (the target is the thread's empty start), effects recorded
    before any checkpoint was stored are on the path too.
    """
    on_path = set(path)
    mine: list[LedgerRow] = []
    orphans: list[Effect] = []
    unplaced: list[Effect] = []
    for row in rows:
        if row.root_checkpoint_id in persisted and row.root_checkpoint_id not in region:
            continue
        anchor = _anchor(row, path[-1], region, from_start)
        if anchor is None and start and row.base_checkpoint_id is None:
            anchor = path[-1]
        if anchor is not None and anchor in on_path:
            mine.append(row)
        elif EffectStatus(row.status) not in _LIVE:
            continue
        elif anchor is not None and anchor not in region and anchor not in persisted:
            unplaced.append(effect_from_row(row, serde))
        else:
            orphans.append(effect_from_row(row, serde))
    return mine, orphans, unplaced


def _anchor(
    row: LedgerRow, first: str, region: set[str], from_start: bool
) -> str | None:
    """The checkpoint an effect belongs to (None: before the first one stored)."""
    if row.root_checkpoint_id in region:
        return row.root_checkpoint_id
    if row.base_checkpoint_id is not None:
        return row.base_checkpoint_id
    # Recorded before any checkpoint of the thread was stored, in the thread's
    # first run, whose checkpoint ids come from one process and sort by time
    # (uuid6): it lies after the first stored checkpoint unless it is older
    # than it (durability "exit" stores only the run's end); such an effect,
    # of a run that stopped before storing any, is reported and left alone.
    if from_start and row.root_checkpoint_id > first:
        return first
    return None
