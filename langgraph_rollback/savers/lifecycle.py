"""What deleting, copying and pruning a thread do to the ledger: nothing is dropped.

The pure parts every saver's `delete_for_runs`, `copy_thread` and `prune`
share: argument checks, and moving effects' anchors off deleted checkpoints.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from langgraph_rollback._errors import InvalidConfigError

__all__ = [
    "LIFECYCLE",
    "PRUNE_STRATEGIES",
    "prune_args",
    "reanchor",
    "refuse_delta",
    "updated_from",
]

PRUNE_STRATEGIES = ("keep_latest", "delete")

LIFECYCLE = """
What thread deletion, copying and pruning do to the ledger: nothing is
dropped. The ledger records actions in the outside world, which deleting
checkpoints does not undo, so its rows stay (`list_effects` still lists
them; undo what you need before deleting):

- `delete_thread(t)`, `delete_for_runs(runs)`, `prune(threads, ...)` delete
  checkpoints and writes only.
- `delete_for_runs` also moves the anchor (`base_checkpoint_id`) of each
  effect whose checkpoints it deletes to the nearest remaining ancestor, in
  the same transaction: a rollback to that checkpoint still undoes them.
  Effects whose checkpoints are gone are placed by that anchor, like those
  of a run whose checkpoints were never stored; so deleting an abandoned
  fork's run places its effects at the fork point, where a rollback to (or
  before) it undoes them, while before the deletion they were orphans, left
  alone.
- `copy_thread(src, dst)` copies checkpoints and writes; the effects stay with
  `src`, where they happened (undo them there). Resuming the copy replays
  the source's recorded calls (effect ids do not include the thread), so it
  repeats none of them.
- `prune(..., strategy="keep_latest")` keeps each namespace's latest
  checkpoint with its pending writes and no parent, so the thread can be
  rolled back only to it afterwards; it refuses threads that use a
  `DeltaChannel` (`NotImplementedError`), as upstream's Postgres saver does.
"""


def prune_args(thread_ids: Sequence[str], strategy: str) -> list[str]:
    """Validate `prune`'s arguments; return the thread ids as strings.

    Raises:
        InvalidConfigError: `thread_ids` is one string, or `strategy` is unknown.
    """
    if isinstance(thread_ids, str):
        raise InvalidConfigError(
            f"prune(thread_ids={thread_ids!r}) got one string. Fix: pass a list "
            f"of thread ids, e.g. prune([{thread_ids!r}])."
        )
    if strategy not in PRUNE_STRATEGIES:
        raise InvalidConfigError(
            f"Unknown prune strategy {strategy!r}. Fix: use 'keep_latest' or 'delete'."
        )
    return [str(t) for t in thread_ids]


def reanchor(
    deleted: dict[tuple[str, str], str | None], bases: Sequence[Sequence[str]]
) -> list[tuple[str, str | None]]:
    """New anchors for effects whose base checkpoint is being deleted.

    Args:
        deleted: `(thread_id, checkpoint_id) -> parent id` of the root
            checkpoints being deleted.
        bases: `(effect_id, thread_id, base_checkpoint_id)` of the effects
            whose base is among them.

    Returns:
        `(effect_id, new_base)`: the nearest ancestor not being deleted (None
        when none remains).
    """
    moved = []
    for effect_id, thread_id, base in bases:
        current: str | None = base
        seen: set[str] = set()
        while current is not None and (thread_id, current) in deleted:
            if current in seen:  # pragma: no cover - a cycle cannot be written
                current = None
                break
            seen.add(current)
            current = deleted[(thread_id, current)]
        moved.append((effect_id, current))
    return moved


def refuse_delta(threads: Sequence[str]) -> None:
    """Raise `NotImplementedError` when keep_latest meets `DeltaChannel` threads."""
    if threads:
        raise NotImplementedError(
            "keep_latest can't prune threads that use a DeltaChannel (their latest "
            f"values are rebuilt from older checkpoints): {', '.join(sorted(threads))}"
        )


def updated_from(chain: Sequence[Sequence[Any]]) -> str | None:
    """What an `update_state` checkpoint was written on.

    Args:
        chain: `(checkpoint_id, source)` from a checkpoint up its parents,
            as far as they are "update" checkpoints.

    Returns:
        The first checkpoint of the chain that is not an "update" one, when
        the chain starts with one; else None.
    """
    if not chain or chain[0][1] != "update":
        return None
    for checkpoint_id, source in chain:
        if source != "update":
            return str(checkpoint_id)
    return None
