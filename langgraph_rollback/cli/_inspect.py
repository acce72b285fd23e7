"""The commands that only read: `effects` (and `--audit`), `threads`, `checkpoints`."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from typing import Any, TextIO

from langchain_core.runnables import RunnableConfig

from langgraph_rollback._models import Effect
from langgraph_rollback.cli._common import CliError, _redact, open_saver, write_table
from langgraph_rollback.cli._threads import thread_rows
from langgraph_rollback.core.ops import ReadAncestry, ReadHead
from langgraph_rollback.savers.base import BaseRollbackSaver


def _effect_row(effect: Effect, width: int) -> list[str]:
    args = ", ".join(f"{k}={v!r}" for k, v in effect.args.items())
    if len(args) > width:
        args = args[: width - 3] + "..."
    return [
        str(effect.seq),
        effect.id,
        effect.status.value,
        effect.kind.value,
        effect.tool,
        effect.node,
        effect.root_checkpoint_id,
        effect.created_at.strftime("%Y-%m-%d %H:%M:%S"),
        args,
    ]


def print_table(effects: Sequence[Effect], out: TextIO) -> None:
    """The ledger as a plain-text table, newest first."""
    header = ["seq", "id", "status", "kind", "tool", "node", "checkpoint"]
    header += ["created (UTC)", "args"]
    write_table(header, [_effect_row(e, 48) for e in effects], out)
    if not effects:
        out.write("(no effects)\n")


def limited_to_none(args: argparse.Namespace, out: TextIO) -> bool:
    """With `--limit 0`, say that nothing was listed because of it (not that
    there is nothing); True when it did."""
    if args.limit != 0 or getattr(args, "json", False):
        return False
    out.write("(nothing listed: --limit 0; raise it, or leave it out for all)\n")
    return True


def cmd_audit(args: argparse.Namespace, out: TextIO) -> int:
    with open_saver(args.db) as saver:
        config: RunnableConfig = {"configurable": {"thread_id": args.thread}}
        entries = saver.list_audit(config, limit=args.limit)
    if args.json:
        dumped = [e.model_dump(mode="json") for e in entries]
        out.write(json.dumps(dumped, indent=2) + "\n")
        return 0
    header = ["at (UTC)", "by", "action", "effects", "rollback", "overrode", "reason"]
    rows = [
        [
            e.at.strftime("%Y-%m-%d %H:%M:%S"),
            e.by,
            e.action.value,
            ",".join(e.effect_ids),
            e.rollback_id or "",
            e.overrode,
            e.reason or "",
        ]
        for e in entries
    ]
    if limited_to_none(args, out):
        return 0
    write_table(header, rows, out)
    if not entries:
        out.write("(no decisions recorded)\n")
    return 0


def cmd_effects(args: argparse.Namespace, out: TextIO) -> int:
    if args.audit:
        return cmd_audit(args, out)
    with open_saver(args.db) as saver:
        config: RunnableConfig = {"configurable": {"thread_id": args.thread}}
        effects = saver.list_effects(config, status=args.status, limit=args.limit)
        no_checkpoints = saver.execute(ReadHead(args.thread)) is None
    if no_checkpoints and args.limit != 0:
        say_no_checkpoints(args, bool(effects))
    if limited_to_none(args, out):
        return 0
    if args.json:
        out.write(
            json.dumps([e.model_dump(mode="json") for e in effects], indent=2) + "\n"
        )
    else:
        print_table(effects, out)
    return 0


def say_no_checkpoints(args: argparse.Namespace, has_effects: bool) -> None:
    """`effects` on a thread with no checkpoints: an error, or a note."""
    if not has_effects and args.status is None:
        raise unknown_thread(args)
    sys.stderr.write(
        f"note: thread {args.thread!r} has no checkpoints (deleted, or never "
        "checkpointed); its effects are listed as the ledger keeps them.\n"
    )


def unknown_thread(args: argparse.Namespace) -> CliError:
    """A thread with neither checkpoints nor effects: most likely a typo."""
    where = f"langgraph-rollback threads {args.db}"
    return CliError(
        f"Thread {args.thread!r} has no checkpoints and no effects in "
        f"{_redact(args.db)}. Fix: check the thread id (`{where}` lists the "
        "threads there)."
    )


def cmd_threads(args: argparse.Namespace, out: TextIO) -> int:
    with open_saver(args.db) as saver:
        rows = thread_rows(saver, args.limit)
    if args.json:
        out.write(json.dumps(rows, indent=2) + "\n")
        return 0
    if limited_to_none(args, out):
        return 0
    if not rows:
        out.write(f"(no threads in {_redact(args.db)})\n")
        return 0
    header = ["thread", "checkpoints", "effects", "applied", "last activity (UTC)"]
    keys = ("thread_id", "checkpoints", "effects", "applied", "last_activity")
    write_table(header, [[_cell(r[k]) for k in keys] for r in rows], out)
    return 0


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str) and "T" in value and value.endswith("+00:00"):
        return value[:19].replace("T", " ")
    return str(value)


def cmd_checkpoints(args: argparse.Namespace, out: TextIO) -> int:
    with open_saver(args.db) as saver:
        config: RunnableConfig = {
            "configurable": {"thread_id": args.thread, "checkpoint_ns": ""}
        }
        rows = checkpoint_rows(saver, args.thread, config, args.limit)
        unknown = (
            not rows and args.limit != 0 and not saver.list_effects(config, limit=1)
        )
    if unknown:
        raise unknown_thread(args)
    if args.json:
        out.write(json.dumps(rows, indent=2) + "\n")
        return 0
    if limited_to_none(args, out):
        return 0
    if not rows:
        out.write(
            f"(thread {args.thread!r} has no checkpoints; its effects: "
            f"langgraph-rollback effects {args.db} --thread {args.thread})\n"
        )
        return 0
    header = ["checkpoint", "step", "source", "ran", "run id", "effects", "path"]
    write_table(
        header,
        [[str(r[k] if r[k] is not None else "") for k in _CP_KEYS] for r in rows],
        out,
    )
    out.write(
        "path: * on the head's path (a target for --to); 'copy of X': a rollback's "
        "restored head.\n"
    )
    return 0


_CP_KEYS = ("checkpoint_id", "step", "source", "ran", "run_id", "effects", "path")


_Waiting = tuple[dict[str, Any], Mapping[str, Any]]
"""A row waiting for its parent, and the `versions_seen` of its checkpoint."""


def checkpoint_rows(
    saver: BaseRollbackSaver, thread: str, config: RunnableConfig, limit: int | None
) -> list[dict[str, Any]]:
    """The thread's root checkpoints, newest first, as plain data.

    Streams the history: each checkpoint is dropped once its row is made; a
    row keeps only the nodes' `versions_seen` until its parent is listed (a
    parent is older, so it comes later). A parent the listing does not reach
    is read after it: a SQLite saver holds its lock while `list` yields.
    """
    head = saver.execute(ReadHead(thread))
    on_path: set[str] = set()
    if head is not None:
        on_path = {
            link.checkpoint_id for link in saver.execute(ReadAncestry(thread, head, ""))
        }
    counts: dict[str, int] = {}
    for effect in saver.list_effects({"configurable": {"thread_id": thread}}):
        counts[effect.root_checkpoint_id] = counts.get(effect.root_checkpoint_id, 0) + 1
    rows: list[dict[str, Any]] = []
    waiting: dict[str, tuple[RunnableConfig, list[_Waiting]]] = {}
    for item in saver.list(config, limit=limit):
        checkpoint_id = str(item.config["configurable"]["checkpoint_id"])
        seen = item.checkpoint.get("versions_seen", {})
        _, children = waiting.pop(checkpoint_id, (item.config, []))
        for row, seen_after in children:
            row["ran"] = ",".join(_ran(seen, seen_after))
        row = _checkpoint_row(item, checkpoint_id, on_path, counts)
        parent = item.parent_config
        if parent is not None:
            parent_id = str(parent["configurable"]["checkpoint_id"])
            waiting.setdefault(parent_id, (parent, []))[1].append((row, seen))
        rows.append(row)
    for parent, waiters in waiting.values():
        found = saver.get_tuple(parent)
        if found is not None:
            seen = found.checkpoint.get("versions_seen", {})
            for row, seen_after in waiters:
                row["ran"] = ",".join(_ran(seen, seen_after))
    return rows


def _checkpoint_row(
    item: Any, checkpoint_id: str, on_path: set[str], counts: dict[str, int]
) -> dict[str, Any]:
    """One row of `checkpoint_rows`; "ran" is filled once its parent is read."""
    restore = item.metadata.get("lgrb_restore")
    copy_of = restore.get("copy_of") if isinstance(restore, dict) else None
    mark = "*" if checkpoint_id in on_path else ""
    if copy_of:
        mark = f"{mark} copy of {copy_of}".strip()
    return {
        "checkpoint_id": checkpoint_id,
        "step": item.metadata.get("step"),
        "source": item.metadata.get("source"),
        "ran": "",
        "run_id": item.metadata.get("run_id"),
        "effects": counts.get(checkpoint_id, 0),
        "path": mark,
    }


def _ran(seen_before: Mapping[str, Any], seen_after: Mapping[str, Any]) -> list[str]:
    """The nodes that ran in a step, from the parent's and the child's
    `versions_seen`."""
    return sorted(
        node
        for node, versions in seen_after.items()
        if not node.startswith("__") and versions != seen_before.get(node)
    )
