"""Where a rollback goes back to: one vocabulary for Python, the CLI and the server.

A target is one of:

| target | Python | CLI `--to` / server `"to"` | goes back to |
|---|---|---|---|
| a checkpoint | its id, its config, a `StateSnapshot` | its id | that checkpoint |
| the thread's start | `"first"` | `first` | the empty state before the thread's first run: everything is undone |
| the latest run | `"run_start"`, `run_start()` | `run_start` | where the thread's latest input started |
| one run | `run_start(run_id)` | `run_start:<run_id>` | where that run started |
| an effect | its id, an `Effect`, or a model `tool_call_id` | the same ids | the checkpoint its task started from: it and everything after it are undone |
| a node | `before_node("name")` | `before_node:<name>` | the checkpoint from which that node last ran |

Keywords and node names match case-insensitively where that is unambiguous
(`First`, `RUN-START`); ids match exactly. A text that is, exactly as given,
an id of the thread (a checkpoint id, an effect id, or a model's tool call
id, which can be spelled like anything: `First`, `run_start:x`, ` call-1`)
names that id; if it is also exactly a keyword target that resolves
(`first`, `run_start:r1` for a run r1), it is refused as ambiguous
(`AmbiguousTargetError`), since either reading would undo a different set
of effects. `parse_target` turns what a caller
passed into a `TargetSelector` without I/O; `target_flow` resolves it to a
checkpoint id by reading the store (`ReadAncestry`, `ReadCheckpoint`,
`Select`). Each failure is a typed error whose "Fix:" speaks the caller's
language (`Voice`): a Python call, a CLI option, or a JSON field.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypeGuard

from langgraph.types import StateSnapshot

from langgraph_rollback._errors import (
    AmbiguousTargetError,
    CheckpointNotFoundError,
    InvalidTargetError,
)
from langgraph_rollback._models import Effect
from langgraph_rollback.core.ledger import LedgerRow
from langgraph_rollback.core.ops import (
    ExistingCheckpoints,
    FindCheckpoint,
    FindEffect,
    FindNamespace,
    Flow,
    ReadAncestry,
    ReadHead,
    Select,
    do,
)
from langgraph_rollback.core.plan import THREAD_START
from langgraph_rollback.core.query import EffectQuery
from langgraph_rollback.core.runs import node_target, run_target
from langgraph_rollback.core.voice import Voice, fix, given, say

__all__ = [
    "Target",
    "TargetSelector",
    "Voice",
    "before_node",
    "is_target",
    "parse_target",
    "run_start",
    "target_flow",
]

Kind = Literal["checkpoint", "first", "run_start", "before_node", "effect", "id"]


@dataclass(frozen=True)
class TargetSelector:
    """A rollback target before it is resolved to a checkpoint.

    Make one with `run_start()`, `before_node(name)`, or pass any target
    (`"first"`, an id, a config, a snapshot, an `Effect`) where one is taken.

    Attributes:
        kind: Which kind of target this is ("id": a checkpoint id, effect id
            or tool call id, to be looked up in that order).
        value: The id, run id or node name (None for "first" and the
            latest run).
    """

    kind: Kind
    value: str | None = None
    text: str | None = field(default=None, compare=False)
    """The text the caller passed, when the target was given as text (it may
    also be an id of the thread, looked up as given)."""

    def __str__(self) -> str:
        if self.kind in ("checkpoint", "effect", "id"):
            return str(self.value)
        return self.kind if self.value is None else f"{self.kind}:{self.value}"


Target = str | Mapping[str, Any] | StateSnapshot | Effect | TargetSelector
"""Anything `rollback(..., to=...)` and `RollbackNode(to=...)` take as a target."""


def is_target(value: object) -> TypeGuard[Target]:
    """Whether `value` is of a kind `parse_target` takes."""
    return isinstance(value, (str, Mapping, StateSnapshot, Effect, TargetSelector))


def run_start(run_id: str | None = None) -> TargetSelector:
    """Target the start of a run.

    Without `run_id`: the start of the thread's latest input, the first
    checkpoint after it was applied (step 0 of the latest `invoke(inputs)`);
    resuming with `invoke(None)` or `Command(resume=...)` continues the same
    input, so it does not move this point. Under durability "exit", where a
    run's steps are not stored, it is the checkpoint the latest run started
    from.

    With `run_id`: where that run started: the first checkpoint after its
    input, or, for a run that resumed the thread, the checkpoint it resumed.
    """
    if run_id is not None and (not isinstance(run_id, str) or not run_id.strip()):
        raise InvalidTargetError(
            f"run_start({run_id!r}): a run id is a non-empty string. Fix: pass "
            "run_start() for the latest run, or run_start(run_id) with an id "
            "from the run's config (configurable.run_id).",
            target=repr(run_id),
        )
    return TargetSelector("run_start", run_id)


def before_node(name: str) -> TargetSelector:
    """Target the checkpoint from which node `name` last ran.

    Walking back from the head (inside a `RollbackNode`: from the checkpoint
    it started from), this is the nearest checkpoint whose next step ran
    `name`: in a loop, the start of `name`'s most recent run on the current
    path. The state there is the state `name` received. Works for nodes
    reached by edges (including conditional edges), not for tasks started
    with `Send`.
    """
    if not isinstance(name, str) or not name:
        raise InvalidTargetError(
            f"before_node({name!r}): a node name is a non-empty string. Fix: pass "
            "the name the node was added with, e.g. before_node('planner').",
            target=repr(name),
        )
    return TargetSelector("before_node", name)


_KEYWORDS = {"first": "first", "run_start": "run_start", "before_node": "before_node"}


def parse_target(to: Target, *, thread_id: str, voice: Voice) -> TargetSelector:
    """What `to` names, without reading anything.

    Raises:
        InvalidTargetError: `to` is not a target (the message says what is).
        CheckpointNotFoundError: `to` is a config of another thread.
    """
    if isinstance(to, TargetSelector):
        return to
    if isinstance(to, Effect):
        return TargetSelector("effect", to.id)
    if isinstance(to, StateSnapshot):
        to = to.config
    if isinstance(to, Mapping):
        return _from_config(to, thread_id, voice)
    if isinstance(to, str):
        return _from_text(to, voice)
    raise InvalidTargetError(
        f"to= is a {type(to).__name__}, not a rollback target. {fix(voice)}",
        target=repr(to),
    )


def _from_config(to: Mapping[str, Any], thread_id: str, voice: Voice) -> TargetSelector:
    configurable = to.get("configurable") or {}
    checkpoint_id = configurable.get("checkpoint_id")
    if not checkpoint_id:
        raise InvalidTargetError(
            "to= is a config without `configurable.checkpoint_id`, so it names no "
            f"checkpoint. {fix(voice)}",
            target=repr(dict(to)),
        )
    if configurable.get("checkpoint_ns"):
        raise InvalidTargetError(
            f"to= names a checkpoint of the subgraph namespace "
            f"{configurable['checkpoint_ns']!r}; a rollback targets the root "
            "graph's checkpoints. Fix: pick the root checkpoint the subgraph "
            "task started from (`graph.get_state_history(config)`).",
            target=str(checkpoint_id),
        )
    other = configurable.get("thread_id")
    if other is not None and str(other) != thread_id:
        raise CheckpointNotFoundError(
            checkpoint_id=str(checkpoint_id), thread_id=thread_id, found_in=[str(other)]
        )
    return TargetSelector("checkpoint", str(checkpoint_id))


def _from_text(text: str, voice: Voice) -> TargetSelector:
    word, sep, rest = text.strip().partition(":")
    keyword = _KEYWORDS.get(word.casefold().replace("-", "_"))
    if keyword is None:
        if not text.strip():
            raise InvalidTargetError(
                f"{given(text, voice)} is empty, not a rollback target. {fix(voice)}",
                target=text,
            )
        return TargetSelector("id", text.strip(), text)
    if keyword == "first":
        if sep:
            raise InvalidTargetError(
                f"{given(text, voice)}: 'first' takes no value. {fix(voice)}",
                target=text,
            )
        return TargetSelector("first", None, text)
    if keyword == "run_start":
        if sep and not rest.strip():
            raise InvalidTargetError(
                f"{given(text, voice)} names no run. Fix: "
                + say(
                    voice,
                    "to=run_start() for the latest run, or to=run_start(run_id)",
                    "--to run_start for the latest run, or --to run_start:<run id>",
                    '"to": "run_start" for the latest run, or '
                    '"to": "run_start:<run id>"',
                )
                + ".",
                target=text,
            )
        return TargetSelector("run_start", rest.strip() or None, text)
    if not rest.strip():
        raise InvalidTargetError(
            f"{given(text, voice)} names no node. Fix: "
            + say(
                voice,
                "to=before_node('planner')",
                "--to before_node:planner",
                '"to": "before_node:planner"',
            )
            + ".",
            target=text,
        )
    return TargetSelector("before_node", rest.strip(), text)


# --- resolving a selector to a checkpoint ------------------------------------------


def target_flow(
    selector: TargetSelector, thread_id: str, *, head: str | None, voice: Voice
) -> Flow[str]:
    """The checkpoint id `selector` names on `thread_id`, walking back from
    `head` (the thread's newest checkpoint when None).

    Raises:
        CheckpointNotFoundError: Nothing on the thread matches (the message
            says what was looked for and the fix).
        AmbiguousTargetError: A tool call id names several effects, or a
            text is both an id of the thread and a keyword target.
        InvalidTargetError: The id is a subgraph's checkpoint.
    """
    if selector.kind == "checkpoint":
        return str(selector.value)
    if selector.kind == "effect":
        return (yield from _effect_target(thread_id, str(selector.value), voice))
    if head is None:
        head = yield from do(ReadHead(thread_id))
    if selector.kind == "id":
        return (yield from _id_target(selector, thread_id, voice))
    if selector.text is not None:
        named = yield from _named_by_id(selector.text, thread_id)
        if named is not None:
            return (yield from _keyword_or_id(selector, named, thread_id, head, voice))
    return (yield from _keyword_target(selector, thread_id, head, voice))


def _keyword_target(
    selector: TargetSelector, thread_id: str, head: str | None, voice: Voice
) -> Flow[str]:
    """The checkpoint a keyword target (first, run_start, before_node) names."""
    if head is None:
        raise CheckpointNotFoundError(
            f"Thread {thread_id!r} has no checkpoints, so {selector} names none. "
            "Fix: check the thread id; a thread gets checkpoints when a graph "
            "compiled with this saver runs on it.",
            checkpoint_id=str(selector),
            thread_id=thread_id,
        )
    if selector.kind == "before_node":
        return (yield from node_target(str(selector.value), thread_id, head, voice))
    if selector.kind == "first":
        return THREAD_START
    chain = yield from do(ReadAncestry(thread_id, head, THREAD_START))
    return (yield from run_target(selector.value, chain, thread_id, voice))


Named = str | list[LedgerRow]
"""What an id names: a checkpoint id, or the ledger rows it names."""


def _named_by_id(value: str, thread_id: str) -> Flow[Named | None]:
    """What `value`, exactly as given, names on the thread: a checkpoint, an
    effect (by its id), the effects of a model's tool call, or nothing."""
    found = yield from do(ExistingCheckpoints(thread_id, [value]))
    if value in found:
        return value
    rows = yield from do(Select(EffectQuery(thread_id=thread_id, effect_id=value)))
    if not rows:
        query = EffectQuery(thread_id=thread_id, tool_call_id=value)
        rows = yield from do(Select(query))
    return rows or None


def _keyword_or_id(
    selector: TargetSelector,
    named: Named,
    thread_id: str,
    head: str | None,
    voice: Voice,
) -> Flow[str]:
    """A text that is an id of the thread and reads as a keyword too: the id,
    unless the text is the keyword spelled exactly and that reading resolves."""
    text = str(selector.text)
    if text == str(selector):
        try:
            keyword = yield from _keyword_target(selector, thread_id, head, voice)
        except CheckpointNotFoundError:
            pass
        else:
            what = named if isinstance(named, str) else _describe(named[0])
            raise AmbiguousTargetError(
                f"{given(text, voice)} is both the target {selector} (checkpoint "
                f"{keyword}) and an id on thread {thread_id!r} ({what}), which "
                "would undo different effects. Fix: "
                + say(
                    voice,
                    f"pass TargetSelector({selector.kind!r}"
                    + ("" if selector.value is None else f", {selector.value!r}")
                    + ") for the target, or the effect or checkpoint id",
                    f"spell the keyword in capitals (--to {text.upper()}) for the "
                    "target, or use the effect or checkpoint id",
                    f'spell the keyword in capitals ("{text.upper()}") for the '
                    "target, or send the effect or checkpoint id",
                )
                + ".",
                target=text,
                candidates=[keyword, *_ids(named)],
            )
    return (yield from _target_of(named, text, thread_id, voice))


def _ids(named: Named) -> list[str]:
    return [named] if isinstance(named, str) else [row.effect_id for row in named]


def _target_of(named: Named, value: str, thread_id: str, voice: Voice) -> Flow[str]:
    """The checkpoint an id names: itself, or the one its effect started from."""
    if isinstance(named, str):
        return named
    if len(named) > 1:
        raise AmbiguousTargetError(
            f"Tool call id {value!r} names {len(named)} effects on thread "
            f"{thread_id!r} ({', '.join(_describe(r) for r in named)}). Fix: "
            + say(
                voice,
                "pass one of their effect ids instead",
                "use one of their effect ids instead",
                "send one of their effect ids instead",
            )
            + ".",
            target=value,
            candidates=_ids(named),
        )
    return (yield from _anchor_of(named[0], thread_id, voice))


def _id_target(selector: TargetSelector, thread_id: str, voice: Voice) -> Flow[str]:
    """A checkpoint id, else an effect id, else a model's tool call id: as
    given, else without surrounding spaces."""
    value = str(selector.value)
    spellings = [value]
    if selector.text is not None and selector.text != value:
        spellings.insert(0, selector.text)
    for spelling in spellings:
        named = yield from _named_by_id(spelling, thread_id)
        if named is not None:
            return (yield from _target_of(named, spelling, thread_id, voice))
    owners = yield from do(FindCheckpoint(value))
    if owners:
        raise CheckpointNotFoundError(
            f"Checkpoint {value!r} belongs to thread {owners[0]!r}, not to thread "
            f"{thread_id!r}; a rollback undoes one thread's effects. Fix: "
            + say(
                voice,
                "pass that thread's config, or a checkpoint of this thread",
                f"use --thread {owners[0]}, or a checkpoint of this thread",
                f"use thread {owners[0]!r}, or a checkpoint of this thread",
            )
            + ".",
            checkpoint_id=value,
            thread_id=thread_id,
            found_in=owners,
        )
    yield from _refuse_other_ids(value, thread_id, voice)
    hint = ""
    if value.casefold() in _NOT_WORDS:
        hint = " (to undo the thread's latest run, the word is run_start)"
    raise CheckpointNotFoundError(
        f"Thread {thread_id!r} has no checkpoint, effect or tool call "
        f"{value!r}, and no thread has a checkpoint with that id{hint}. "
        f"{fix(voice)}",
        checkpoint_id=value,
        thread_id=thread_id,
    )


def _refuse_other_ids(value: str, thread_id: str, voice: Voice) -> Flow[None]:
    """Raise when `value` is a subgraph checkpoint of the thread, or an effect
    of another thread: ids that exist, but are no target here."""
    namespaces = yield from do(FindNamespace(thread_id, value))
    if namespaces:
        query = EffectQuery(
            thread_id=thread_id, checkpoint_ns=namespaces[0], checkpoint_id=value
        )
        rows = yield from do(Select(query))
        root = f" ({rows[0].root_checkpoint_id})" if rows else ""
        raise InvalidTargetError(
            f"Checkpoint {value!r} is a checkpoint of the subgraph namespace "
            f"{namespaces[0]!r} of thread {thread_id!r}; a rollback targets the "
            "root graph's checkpoints. Fix: "
            + say(
                voice,
                f"pass the root checkpoint the subgraph task started from{root}",
                f"use --to with the root checkpoint the subgraph task started "
                f"from{root}",
                f"send the root checkpoint the subgraph task started from{root}",
            )
            + ", or an effect id of the subgraph's calls.",
            target=value,
        )
    elsewhere = yield from do(FindEffect(value))
    if elsewhere is not None:
        raise CheckpointNotFoundError(
            f"Effect {value!r} belongs to thread {elsewhere!r}, not to thread "
            f"{thread_id!r}; a rollback undoes one thread's effects. Fix: "
            + say(
                voice,
                f"roll back thread {elsewhere!r} (its config) to it",
                f"use --thread {elsewhere}",
                f"roll back thread {elsewhere!r} to it",
            )
            + ".",
            checkpoint_id=value,
            thread_id=thread_id,
            found_in=[elsewhere],
        )


_NOT_WORDS = frozenset({"last", "latest", "last_run", "start", "begin", "beginning"})


def _effect_target(thread_id: str, effect_id: str, voice: Voice) -> Flow[str]:
    rows = yield from do(Select(EffectQuery(thread_id=thread_id, effect_id=effect_id)))
    if not rows:
        yield from _refuse_other_ids(effect_id, thread_id, voice)
        raise CheckpointNotFoundError(
            f"Thread {thread_id!r} has no effect {effect_id!r}. "
            + say(
                voice,
                "Fix: take the id from saver.list_effects(config) for that thread.",
                "Fix: take the id from `langgraph-rollback effects DB --thread T`.",
                "Fix: take the id from GET /threads/<id>/effects.",
            ),
            checkpoint_id=effect_id,
            thread_id=thread_id,
        )
    return (yield from _anchor_of(rows[0], thread_id, voice))


def _anchor_of(row: LedgerRow, thread_id: str, voice: Voice) -> Flow[str]:
    """The stored checkpoint the effect's task started from (or, when that one
    was never stored, the one its run started from)."""
    root = row.root_checkpoint_id
    stored = yield from do(ExistingCheckpoints(thread_id, [root]))
    if root in stored:
        return root
    if row.base_checkpoint_id is not None:
        return row.base_checkpoint_id
    raise CheckpointNotFoundError(
        f"Effect {row.effect_id} ({row.tool!r}) was recorded before thread "
        f"{thread_id!r} stored any checkpoint (its run used durability 'exit' "
        "or stopped early), so no checkpoint lies before it. Fix: "
        + say(voice, "roll back to='first'", "use --to first", 'send "to": "first"')
        + " to undo everything the thread's first run did.",
        checkpoint_id=row.effect_id,
        thread_id=thread_id,
    )


def _describe(row: LedgerRow) -> str:
    return f"{row.effect_id}: {row.tool}"
