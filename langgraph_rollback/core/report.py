"""`RollbackReport`: what a rollback undid and did not, for people and for LLMs."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from langchain_core.messages import HumanMessage
from pydantic import BaseModel, ConfigDict

from langgraph_rollback._errors import RollbackFailedError
from langgraph_rollback._models import Effect
from langgraph_rollback.core.text import clip

__all__ = [
    "FailedStep",
    "RollbackReport",
    "RollbackStatus",
    "SkippedStep",
    "UndoneStep",
    "call_text",
    "describe_undo",
    "one_line",
]

RollbackStatus = Literal[
    "completed",
    "nothing_to_undo",
    "aborted",
    "stopped",
    "failed",
    "incomplete",
    "rejected",
]


class UndoneStep(BaseModel):
    """An effect whose inverse ran."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    effect: Effect
    result: Any = None
    """What the inverse returned."""
    description: str
    """A short sentence naming the action, e.g. "deleted notes.txt (undo of write_file)"."""


class SkippedStep(BaseModel):
    """An effect left as it is, and why."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    effect: Effect
    reason: str


class FailedStep(BaseModel):
    """An effect whose inverse raised."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    effect: Effect
    error: str


class RollbackReport(BaseModel):
    """The outcome of one rollback.

    `status` is one of:

    - `"completed"`: every effect the plan chose to undo was undone (and,
      for a reversible effect with `observe`, read back as before), and the
      state was restored to the target; effects left by the caller's own
      policy (irreversible, `skip=`, `on_conflict="skip"`) are listed in
      `skipped` and `conflicts`;
    - `"nothing_to_undo"`: no effect needed undoing; the state is at the target;
    - `"aborted"`: a policy refused before any inverse ran (see `message`);
      every effect that made it refuse is in `skipped` or `conflicts`;
    - `"stopped"`: a target changed while the rollback ran, under
      `on_conflict="abort"`: the newer effects were undone, that one and the
      older ones were not, the state was not restored; rolling back again
      continues there;
    - `"failed"`: an inverse raised (or timed out); the state was not
      restored and the ledger is resumable: rolling back again continues
      where this stopped;
    - `"incomplete"`: some effects' outcomes are unknown (a call or an
      inverse was cut off); the others were undone, the state was not
      restored; resolve them (`saver.resolve_effect`) and roll back again;
    - `"rejected"`: a human rejected the plan; nothing was done.

    `str(report)` is a short text naming each action; `to_message()` turns it
    into a LangChain message for a replanning LLM.
    """

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    rollback_id: str
    thread_id: str
    target_checkpoint_id: str
    head_checkpoint_id: str
    restored_checkpoint_id: str | None = None
    """The new head that copies the target (None when not restored)."""
    status: RollbackStatus
    message: str = ""
    """Why the rollback stopped, when it did not complete."""
    undone: list[UndoneStep] = []
    """Inverses that ran, in the order they ran (newest effect first)."""
    skipped: list[SkippedStep] = []
    """Effects left as they are: irreversible, undeclared, never applied."""
    conflicts: list[SkippedStep] = []
    """Effects whose target changed since the agent touched it."""
    failures: list[FailedStep] = []
    already_compensated: list[Effect] = []
    orphans: list[Effect] = []
    """Live effects on abandoned branches after the target, left as they are."""
    unplaced: list[Effect] = []
    """Live effects after the target whose checkpoints were deleted (a
    `prune`), left as they are: nothing tells which branch they were on."""
    started_at: datetime
    finished_at: datetime

    @property
    def ok(self) -> bool:
        """Whether the world and the state are back at the target, as far as undoable."""
        return self.status in ("completed", "nothing_to_undo")

    @property
    def duration_s(self) -> float:
        """Wall time of the rollback in seconds."""
        return (self.finished_at - self.started_at).total_seconds()

    def raise_for_status(self) -> RollbackReport:
        """Return the report if `ok`, else raise `RollbackFailedError` with its text."""
        if not self.ok:
            raise RollbackFailedError(self, str(self))
        return self

    def __str__(self) -> str:
        head = {
            "completed": "Rolled back",
            "nothing_to_undo": "Nothing to undo; rolled back",
            "aborted": "Did not roll back",
            "stopped": "Rollback stopped at a changed target for",
            "failed": "Rollback stopped part-way for",
            "incomplete": "Rollback incomplete for",
            "rejected": "Rollback rejected for",
        }[self.status]
        lines = [
            f"{head} thread {self.thread_id!r} to checkpoint "
            f"{self.target_checkpoint_id} ({self.status}, {self.duration_s:.2f} s)."
        ]
        if self.message:
            lines.append(one_line(self.message))
        if self.undone:
            lines.append("Undone:")
            lines += [f"  - {one_line(step.description)}" for step in self.undone]
        if self.failures:
            lines.append("Failed to undo:")
            lines += [
                f"  - {call_text(step.effect)}: {one_line(step.error)}"
                for step in self.failures
            ]
        if self.conflicts:
            lines.append("Not undone, changed by someone else since:")
            lines += [
                f"  - {call_text(step.effect)}: {one_line(step.reason)}"
                for step in self.conflicts
            ]
        if self.skipped:
            lines.append("Not undone:")
            lines += [
                f"  - {call_text(step.effect)}: {one_line(step.reason)}"
                for step in self.skipped
            ]
        if self.already_compensated:
            lines.append(
                f"Already undone by an earlier rollback: "
                f"{len(self.already_compensated)} effect(s)."
            )
        if self.orphans:
            lines.append("Left alone on abandoned branches:")
            lines += [f"  - {call_text(effect)}" for effect in self.orphans]
        if self.unplaced:
            lines.append(
                "Left alone, their checkpoints were deleted (pruned), so nothing "
                "tells whether they led to the current state (undo them by hand "
                "if they should go):"
            )
            lines += [f"  - {call_text(effect)}" for effect in self.unplaced]
        if self.status in ("stopped", "failed", "incomplete"):
            lines.append("Rolling back to the same checkpoint again resumes from here.")
        return "\n".join(lines)

    def summary(self) -> dict[str, Any]:
        """Plain data (str, lists, dicts) for a graph's state or a JSON log."""
        return {
            "rollback_id": self.rollback_id,
            "status": self.status,
            "ok": self.ok,
            "thread_id": self.thread_id,
            "target_checkpoint_id": self.target_checkpoint_id,
            "restored_checkpoint_id": self.restored_checkpoint_id,
            "message": self.message,
            "undone": [step.description for step in self.undone],
            "not_undone": [
                f"{call_text(step.effect)}: {step.reason}"
                for step in [*self.skipped, *self.conflicts]
            ],
            "failed": [
                f"{call_text(step.effect)}: {step.error}" for step in self.failures
            ],
            "text": str(self),
        }

    def to_message(self) -> HumanMessage:
        """The report as a message a replanning LLM sees in its conversation."""
        return HumanMessage(
            content=f"[rollback report]\n{self}",
            name="rollback",
            additional_kwargs={
                "rollback": {
                    "rollback_id": self.rollback_id,
                    "status": self.status,
                    "target_checkpoint_id": self.target_checkpoint_id,
                }
            },
        )


def describe_undo(effect: Effect, result: Any) -> str:
    """The sentence naming an undone action: the inverse's text on one line."""
    if isinstance(result, str) and result.strip():
        return f"{one_line(result.strip())} (undo of {effect.tool})"
    return f"undid {call_text(effect)}"


def one_line(text: str) -> str:
    """`text` with line breaks and other control characters escaped (`\\n`),
    so text from tools and inverses cannot write lines of its own into a
    report."""
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in text)


def call_text(effect: Effect, width: int = 60) -> str:
    """`tool(arg=value, ...)`, about `width` characters of arguments.

    Whole arguments are shown while they fit, then `...`; a first argument
    longer than `width` is cut at a separator (`/`, a space, ...), so a path
    is never cut mid-word.
    """
    shown: list[str] = []
    length = -2  # of ", ".join(shown)
    for k, v in effect.args.items():
        # Each argument's text is made only when it is reached: the first
        # that does not fit ends the list (a long value is never repr'd whole
        # for nothing).
        pair = f"{k}={v!r}"
        length += 2 + len(pair)
        if length > width:
            if not shown:
                return f"{effect.tool}({clip(pair, width)})"
            return f"{effect.tool}({', '.join(shown)}, ...)"
        shown.append(pair)
    return f"{effect.tool}({', '.join(shown)})"
