"""The argument parser: one sub-command per command."""

from __future__ import annotations

import argparse
from typing import Any

from langgraph_rollback._models import EffectStatus
from langgraph_rollback.cli._act import cmd_migrate, cmd_plan, cmd_resolve, cmd_rollback
from langgraph_rollback.cli._common import (
    _count,
    _decider_options,
    _os_user,
    _version,
    add_graph_options,
)
from langgraph_rollback.cli._inspect import cmd_checkpoints, cmd_effects, cmd_threads


def add_threads_parser(sub: Any) -> None:
    """The `threads` sub-command."""
    threads = sub.add_parser(
        "threads", help="the threads, with effect counts and last activity"
    )
    threads.add_argument("db", help="SQLite file or postgresql:// URL")
    threads.add_argument("--limit", type=_count, help="at most this many, latest first")
    threads.add_argument("--json", action="store_true", help="print JSON")
    threads.set_defaults(run=cmd_threads)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (one sub-command each)."""
    parser = argparse.ArgumentParser(
        prog="langgraph-rollback",
        description="Inspect the side-effect ledger of LangGraph threads and roll them back.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", required=True)
    add_threads_parser(sub)
    _add_reading(sub)
    _add_plan_and_rollback(sub)
    _add_resolve(sub)
    migrate = sub.add_parser("migrate", help="create or upgrade the tables")
    migrate.add_argument("db", help="SQLite file or postgresql:// URL")
    migrate.add_argument("--print-sql", action="store_true", help="print, do not run")
    migrate.set_defaults(run=cmd_migrate)
    return parser


def _add_reading(sub: Any) -> None:
    """`effects` and `checkpoints`."""
    effects = sub.add_parser("effects", help="the ledger of a thread, newest first")
    effects.add_argument("db", help="SQLite file or postgresql:// URL")
    effects.add_argument("--thread", required=True, help="the thread id")
    effects.add_argument("--status", help="only effects in this status")
    effects.add_argument("--limit", type=_count, help="at most this many, newest first")
    effects.add_argument("--json", action="store_true", help="print JSON")
    effects.add_argument(
        "--audit",
        action="store_true",
        help="the thread's human decisions instead (who, when, why, what it "
        "overrode), newest first",
    )
    effects.set_defaults(run=cmd_effects)

    checkpoints = sub.add_parser(
        "checkpoints", help="a thread's checkpoints, newest first (targets for --to)"
    )
    checkpoints.add_argument("db", help="SQLite file or postgresql:// URL")
    checkpoints.add_argument("--thread", required=True, help="the thread id")
    checkpoints.add_argument("--limit", type=_count, help="at most this many")
    checkpoints.add_argument("--json", action="store_true", help="print JSON")
    checkpoints.set_defaults(run=cmd_checkpoints)


def _add_plan_and_rollback(sub: Any) -> None:
    """`plan` and `rollback`: the same target and graph options."""
    for name, helptext, run in (
        ("plan", "what a rollback to a checkpoint would do", cmd_plan),
        ("rollback", "undo the effects after a checkpoint", cmd_rollback),
    ):
        command = sub.add_parser(name, help=helptext)
        command.add_argument("db", help="SQLite file or postgresql:// URL")
        command.add_argument("--thread", required=True, help="the thread id")
        command.add_argument(
            "--to",
            required=True,
            help="where to go back to: a checkpoint id, first, run_start, "
            "run_start:<run id>, before_node:<node>, or an effect id or model "
            "tool call id (that effect and everything after it)",
        )
        add_graph_options(command)
        if name == "rollback":
            _add_policies(command)
        command.set_defaults(run=run)


def _add_policies(command: argparse.ArgumentParser) -> None:
    """`rollback`'s options: confirmation, policies, skips, who and why."""
    command.add_argument("--yes", action="store_true", help="do not ask")
    command.add_argument(
        "--on-irreversible",
        default="skip",
        choices=("skip", "abort"),
        help="irreversible and undeclared effects: leave and report them "
        "(default), or refuse before undoing anything",
    )
    command.add_argument(
        "--on-conflict",
        default="abort",
        choices=("abort", "skip", "force"),
        help="targets changed since the agent touched them: refuse "
        "(default), leave those effects, or undo them anyway",
    )
    command.add_argument(
        "--on-failure",
        default="stop",
        choices=("stop", "continue"),
        help="an inverse raises: stop there (default), or still run the "
        "older ones; either way the state is not restored",
    )
    command.add_argument(
        "--skip",
        action="append",
        default=[],
        metavar="EFFECT_ID",
        help="leave this effect as it is (repeat for more); kept in the audit trail",
    )
    _decider_options(command)


def _add_resolve(sub: Any) -> None:
    """`resolve`: an operator's decision on an unknown outcome."""
    resolve = sub.add_parser(
        "resolve", help="record what happened to an effect whose outcome is unknown"
    )
    resolve.add_argument("db", help="SQLite file or postgresql:// URL")
    resolve.add_argument("--thread", required=True, help="the thread id")
    resolve.add_argument("effect_id", help="the effect (from `effects`)")
    decision = resolve.add_mutually_exclusive_group()
    for name, text in (
        ("applied", "a pending call landed (a replay returns --result)"),
        ("not-applied", "a pending call did not land (a replay runs it)"),
        ("compensated", "an interrupted inverse took effect"),
        ("not-compensated", "an interrupted inverse did not (a rollback reruns it)"),
    ):
        decision.add_argument(
            f"--{name}",
            dest="decision",
            action="store_const",
            const=name.replace("-", "_"),
            help=text,
        )
    resolve.add_argument(
        "--result", help="what the call returned, as JSON (for a lost result)"
    )
    resolve.add_argument(
        "--expect-status",
        choices=[s.value for s in EffectStatus],
        help="refuse unless the effect is still in this status",
    )
    resolve.add_argument("--reason", help="why, kept in the effect's notes")
    resolve.add_argument(
        "--by", default=_os_user(), help="who decided (default: the OS user)"
    )
    resolve.set_defaults(run=cmd_resolve)
