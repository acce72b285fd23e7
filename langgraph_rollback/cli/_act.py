"""The commands that decide or change: `plan`, `rollback`, `resolve`, `migrate`."""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
from contextlib import closing
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import unquote

from langchain_core.runnables import RunnableConfig

from langgraph_rollback._errors import (
    EffectNotFoundError,
    EffectStateError,
)
from langgraph_rollback._models import Effect, EffectStatus
from langgraph_rollback._rollback import plan_rollback, rollback
from langgraph_rollback.cli._common import (
    CliError,
    _connecting,
    _is_postgres,
    _redact,
    check_decider_options,
    graph_from_args,
    need_postgres,
    open_saver,
    operator,
    sqlite_error,
)
from langgraph_rollback.core.voice import Voice
from langgraph_rollback.savers.base import BaseRollbackSaver
from langgraph_rollback.savers.sql import CURRENT_VERSION, pending_migrations


def cmd_plan(args: argparse.Namespace, out: TextIO) -> int:
    with open_saver(args.db) as saver:
        graph = graph_from_args(args, saver)
        config: RunnableConfig = {"configurable": {"thread_id": args.thread}}
        plan = plan_rollback(graph, config, to=args.to, voice=Voice.CLI)
    out.write(str(plan) + "\n")
    return 0


def refuse_without_terminal() -> None:
    """`rollback` asks before acting; with no terminal to ask on, say `--yes`."""
    if not sys.stdin.isatty():
        raise CliError(
            "rollback asks before acting, and stdin is not a terminal. Fix: pass "
            "--yes to roll back without asking (the plan above is what it does)."
        )


def cmd_rollback(args: argparse.Namespace, out: TextIO) -> int:
    by = operator(args)  # refused before the database is opened
    with open_saver(args.db) as saver:
        graph = graph_from_args(args, saver)
        config: RunnableConfig = {"configurable": {"thread_id": args.thread}}
        plan = plan_rollback(graph, config, to=args.to, voice=Voice.CLI)
        out.write(str(plan) + "\n")
        if not args.yes:
            refuse_without_terminal()
            out.write("Roll back? [y/N] ")
            out.flush()
            if sys.stdin.readline().strip().lower() not in ("y", "yes"):
                out.write("Not rolled back.\n")
                return 1
        total = len(plan.to_undo) + len(plan.conflicts)
        done = [0]

        def progress(effect: Effect, ok: bool) -> None:
            done[0] += 1
            state = "undone" if ok else "FAILED"
            sys.stderr.write(
                f"[{done[0]}/{total}] {state}: #{effect.seq} {effect.tool}\n"
            )

        report = rollback(
            graph,
            config,
            to=args.to,
            voice=Voice.CLI,
            on_irreversible=args.on_irreversible,
            on_conflict=args.on_conflict,
            on_failure=args.on_failure,
            skip=args.skip,
            progress=progress,
            by=by,
            reason=args.reason,
        )
    out.write(str(report) + "\n")
    return 0 if report.ok else 1


_DECISIONS = {
    "applied": ("pending", {"applied": True}),
    "not_applied": ("pending", {"applied": False}),
    "compensated": ("compensating", {"compensated": True}),
    "not_compensated": ("compensating", {"compensated": False}),
}


def cmd_resolve(args: argparse.Namespace, out: TextIO) -> int:
    check_decider_options(args)
    config: RunnableConfig = {"configurable": {"thread_id": args.thread}}
    result = _json_arg(args.result)
    with open_saver(args.db) as saver:
        effect = _effect_to_resolve(saver, config, args)
        kwargs = _resolution(effect, args, result)
        try:
            resolved = saver.resolve_effect(
                config, args.effect_id, by=args.by, reason=args.reason, **kwargs
            )
        except EffectStateError as exc:
            raise CliError(
                f"effect {args.effect_id} changed while it was being resolved (it "
                f"is {exc.status} now); nothing was recorded. Fix: look at it again "
                f"with `langgraph-rollback effects {args.db} --thread "
                f"{args.thread}`, then resolve it for the status it has."
            ) from exc
    out.write(
        f"Effect {resolved.id} ({resolved.tool}) was {effect.status.value}, is now "
        f"{resolved.status.value}; recorded by {args.by}"
        + (f" ({args.reason})" if args.reason else "")
        + ".\n"
    )
    return 0


def _json_arg(text: str | None) -> Any:
    from langgraph_rollback.core.resolve import UNSET

    if text is None:
        return UNSET
    try:
        return json.loads(text)
    except ValueError as exc:
        raise CliError(
            f"--result {text!r} is not JSON ({exc}). Fix: pass what the call "
            """returned as JSON, e.g. --result '"ok"' or --result '{"id": 7}'."""
        ) from exc


def _effect_to_resolve(
    saver: BaseRollbackSaver, config: RunnableConfig, args: argparse.Namespace
) -> Effect:
    """The effect, checked against `--expect-status`."""
    try:
        effect = saver.get_effect(config, args.effect_id)
    except EffectNotFoundError as exc:
        raise CliError(
            f"thread {args.thread!r} has no effect {args.effect_id!r}. Fix: take "
            f"the id from `langgraph-rollback effects {args.db} --thread "
            f"{args.thread}`."
        ) from exc
    if args.expect_status and effect.status.value != args.expect_status:
        raise CliError(
            f"effect {effect.id} ({effect.tool}) is {effect.status.value}, not "
            f"{args.expect_status} as --expect-status says: it changed since you "
            "looked, so nothing was recorded. Fix: look at it again with "
            f"`langgraph-rollback effects {args.db} --thread {args.thread}`, then "
            "resolve it for the status it has."
        )
    return effect


def _resolution(
    effect: Effect, args: argparse.Namespace, result: Any
) -> dict[str, Any]:
    """`resolve_effect`'s keywords for the decision, refused in CLI words when
    it does not fit the effect's status."""
    from langgraph_rollback.core.resolve import UNSET

    status = effect.status
    lost = status is EffectStatus.APPLIED and not effect.result_known
    flag = "--" + args.decision.replace("_", "-") if args.decision else None
    if args.decision is None and lost and result is not UNSET:
        return {"result": result}
    needs = {
        EffectStatus.PENDING: "--applied (it landed) or --not-applied (it did not)",
        EffectStatus.COMPENSATING: "--compensated (the inverse took effect) or "
        "--not-compensated (it did not; a rollback runs it again)",
    }
    expected, kwargs = _DECISIONS.get(args.decision or "", ("", {}))
    if status.value == expected:
        return {**kwargs, "result": result}
    if status in needs:
        fix = needs[status]
    elif lost:
        fix = "--result JSON, what the call returned"
    else:
        raise CliError(
            f"effect {effect.id} ({effect.tool}) is {status.value}: its outcome "
            "is known, so there is nothing to resolve."
        )
    given = f"{flag} does not fit" if flag else "a decision is needed for"
    raise CliError(
        f"effect {effect.id} ({effect.tool}) is {status.value}; {given} it. "
        f"Fix: pass {fix}."
    )


def _pending_sql(db: str) -> list[str]:
    """The ledger migrations this database has not run, as SQL text: each
    one's statements, then the row that records it in `lgrb_migrations`.

    Raises:
        LedgerSchemaError: The ledger is newer than this version knows.
    """
    if _is_postgres(db):
        need_postgres(db)
        import psycopg

        from langgraph_rollback.savers import postgres_sql as pg

        current = None
        with _connecting(db), psycopg.connect(db) as conn:
            exists = conn.execute("SELECT to_regclass('lgrb_migrations')").fetchone()
            if exists and exists[0]:
                (current,) = conn.execute(CURRENT_VERSION).fetchone() or (None,)
        return [pg.VERSION_TABLE, *_rendered(pg.MIGRATIONS, current, "%s")]
    from langgraph_rollback.savers import sqlite_sql as sq

    current = None
    ledger = _opened(db)
    if ledger is not None:
        with closing(ledger):
            found = ledger.execute(
                "SELECT name FROM sqlite_master WHERE name = 'lgrb_migrations'"
            ).fetchone()
            if found:
                (current,) = ledger.execute(CURRENT_VERSION).fetchone()
    return [sq.VERSION_TABLE, *_rendered(sq.MIGRATIONS, current, "?")]


def _opened(db: str) -> sqlite3.Connection | None:
    """The SQLite database `db` (a path, or a `file:` URI as `migrate` opens
    it), opened to read its version and never written; None when there is no
    such file yet (nothing is created)."""
    uri = None
    path = db
    if db.startswith("file:"):
        uri = db.split("#", 1)[0]
        path = unquote(uri[5:].split("?", 1)[0])
        path = path.removeprefix("//localhost").removeprefix("//")
    if not Path(path).exists():
        return None  # not there yet: every migration is pending
    try:
        # Opened as `migrate` opens it (a read-only connection to a WAL
        # database would leave its -wal and -shm files behind).
        return sqlite3.connect(uri, uri=True) if uri else sqlite3.connect(db)
    except sqlite3.Error as exc:
        raise sqlite_error(db, exc) from exc


def _rendered(migrations: list[str], current: Any, mark: str) -> list[str]:
    """`pending_migrations` as text (its only parameters are version numbers)."""
    return [
        text.replace(mark, str(int(params[0]))) if params else text
        for text, params in pending_migrations(migrations, current, mark)
    ]


def cmd_migrate(args: argparse.Namespace, out: TextIO) -> int:
    if args.print_sql:
        pending = _pending_sql(args.db)
        out.write("-- LangGraph's own tables are created by its setup() first.\n")
        out.write("-- One transaction: a statement that fails changes nothing.\n")
        out.write("BEGIN;\n\n")
        for text in pending:
            out.write(text.strip().rstrip(";") + ";\n\n")
        out.write("COMMIT;\n")
        if len(pending) == 1:  # the version table alone
            out.write("-- The ledger is up to date.\n")
        return 0
    with open_saver(args.db, create=True) as saver:
        saver.setup()  # type: ignore[attr-defined]
    out.write(
        f"{_redact(args.db)}: LangGraph's and the ledger's tables are up to date.\n"
    )
    return 0
