"""`langgraph-rollback`: inspect the ledger, plan and run rollbacks, migrate.

```
langgraph-rollback threads     DB [--json] [--limit N]
langgraph-rollback effects     DB --thread T [--json] [--status S] [--limit N]
langgraph-rollback checkpoints DB --thread T [--json] [--limit N]
langgraph-rollback plan        DB --thread T --to TARGET --graph module:attr
langgraph-rollback rollback    DB --thread T --to TARGET --graph module:attr [--yes]
langgraph-rollback resolve     DB --thread T EFFECT_ID --applied|--not-applied|--compensated
                               [--result JSON] [--expect-status S] [--reason R] [--by WHO]
langgraph-rollback migrate     DB [--print-sql]
```

`DB` is a SQLite file path or a `postgresql://` URL. `threads`, `effects` and
`checkpoints` need only the database. `plan` and `rollback` also need the
graph and its inverses: `--graph module:attr` names a `StateGraph` or a
compiled graph (the way ASGI servers take an app) and is never called;
`--graph-factory module:function` names a function that takes the saver and
returns a compiled graph. Importing the module declares the tools. `--to
first` names the thread's first checkpoint. `resolve` records an operator's
decision on an effect whose outcome is unknown (`saver.resolve_effect`).
"""

from __future__ import annotations

import argparse
import getpass
import importlib
import inspect
import json
import sqlite3
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any, TextIO, cast

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import BaseCheckpointSaver

from langgraph_rollback._cli_threads import thread_rows
from langgraph_rollback._errors import (
    EffectNotFoundError,
    EffectStateError,
    RollbackError,
)
from langgraph_rollback._models import Effect, EffectStatus
from langgraph_rollback._redact import redact
from langgraph_rollback._rollback import plan_rollback, rollback
from langgraph_rollback.core.ops import ReadAncestry, ReadHead
from langgraph_rollback.core.voice import Voice
from langgraph_rollback.savers.base import BaseRollbackSaver

__all__ = ["main"]


class CliError(Exception):
    """A problem with the command line itself; printed without a traceback."""


def _is_postgres(db: str) -> bool:
    return db.startswith(("postgres://", "postgresql://"))


@contextmanager
def open_saver(db: str, *, create: bool = False) -> Iterator[BaseRollbackSaver]:
    """The saver for `db`: a SQLite path, or a PostgreSQL URL.

    Unless `create`, `db` must already hold a ledger: inspecting a database
    never creates tables in it.
    """
    missing = CliError(
        f"{redact(db)}: no ledger tables here. Fix: pass the database your graph's "
        "rollback saver writes, or create the tables with "
        f"`langgraph-rollback migrate {redact(db)}`."
    )
    if _is_postgres(db):
        from langgraph_rollback.postgres import PostgresRollbackSaver

        with _connecting(db), PostgresRollbackSaver.from_conn_string(db) as pg_saver:
            if not create:
                with pg_saver._cursor() as cur:
                    cur.execute("SELECT to_regclass('lgrb_effects') AS t")
                    found = cur.fetchone()
                if not found or found["t"] is None:
                    raise missing
            yield pg_saver
        return
    from langgraph_rollback.savers.sqlite import SqliteRollbackSaver

    if not create:
        if not Path(db).exists():
            raise CliError(
                f"{db}: no such SQLite file. Fix: pass the database your graph's "
                "SqliteRollbackSaver writes (or a postgresql:// URL)."
            )
        if not _has_ledger(db):
            raise missing
    with SqliteRollbackSaver.from_conn_string(db) as sqlite_saver:
        yield sqlite_saver


def _has_ledger(db: str) -> bool:
    """Whether the SQLite file `db` holds the ledger's tables (read-only)."""
    try:
        with closing(
            sqlite3.connect(f"file:{Path(db).resolve()}?mode=ro", uri=True)
        ) as conn:
            found = conn.execute(
                "SELECT 1 FROM sqlite_master WHERE name = 'lgrb_effects'"
            ).fetchone()
    except sqlite3.DatabaseError as exc:
        raise CliError(
            f"{db}: not a SQLite database ({exc}). Fix: pass the file your "
            "graph's SqliteRollbackSaver writes, or a postgresql:// URL."
        ) from exc
    return found is not None


@contextmanager
def _connecting(db: str) -> Iterator[None]:
    """Turn a failure to reach a PostgreSQL server into a `CliError`."""
    import psycopg

    try:
        yield
    except (psycopg.OperationalError, psycopg.ProgrammingError) as exc:
        # ProgrammingError: a URL libpq cannot parse, which it echoes whole.
        text = redact(str(exc), db).strip()
        first = text.splitlines()[0] if text else type(exc).__name__
        raise CliError(
            f"cannot reach {redact(db)}: {first}. Fix: check the URL, and that "
            "the server is running and accepts connections."
        ) from None


def _import_attr(option: str, spec: str) -> Any:
    """Import `module:attr` for `option`, calling nothing but the import."""
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise CliError(
            f"{option} {spec!r}: expected module:attr, e.g. --graph myapp.agent:builder."
        )
    if "" not in sys.path:
        sys.path.insert(0, "")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise CliError(
            f"{option} {spec!r}: cannot import {module_name!r} ({exc}). Fix: run "
            "from the directory that holds it, or set PYTHONPATH."
        ) from exc
    target: Any = module
    for part in attr.split("."):
        if not hasattr(target, part):
            raise CliError(
                f"{option} {spec!r}: {module_name} has no attribute {attr!r}."
            )
        target = getattr(target, part)
    return target


def _what(target: Any) -> str:
    """How an imported object is named in an error."""
    if inspect.isclass(target):
        return f"the class {target.__qualname__}"
    if inspect.isroutine(target):
        return f"the function {getattr(target, '__qualname__', target)}"
    return f"a {type(target).__name__}"


def load_graph(spec: str, saver: BaseRollbackSaver) -> Any:
    """`--graph module:attr`: a `StateGraph` or compiled graph, bound to `saver`.

    Never calls what it imports: anything else is refused before it runs.
    """
    from langgraph.graph import StateGraph
    from langgraph.pregel import Pregel

    target = _import_attr("--graph", spec)
    if isinstance(target, StateGraph):
        return target.compile(checkpointer=cast(BaseCheckpointSaver[Any], saver))
    if isinstance(target, Pregel):
        return target.copy(update={"checkpointer": saver})
    hint = (
        f" Fix: if it builds the graph from a saver, pass --graph-factory {spec}; "
        "otherwise point --graph at the StateGraph (the builder) or the compiled graph."
        if inspect.isroutine(target)
        else " Fix: point --graph at the StateGraph (the builder) or the compiled "
        "graph, or pass --graph-factory module:function for a function saver -> "
        "compiled graph."
    )
    raise CliError(
        f"--graph {spec!r} is {_what(target)}, not a graph; --graph takes a "
        f"StateGraph or a compiled graph and calls nothing.{hint}"
    )


def load_graph_factory(spec: str, saver: BaseRollbackSaver) -> Any:
    """`--graph-factory module:function`: called with `saver`, returns the graph.

    Refused before the call unless it is a function that takes one argument.
    """
    from langgraph.graph import StateGraph
    from langgraph.pregel import Pregel

    target = _import_attr("--graph-factory", spec)
    if isinstance(target, (StateGraph, Pregel)):
        raise CliError(
            f"--graph-factory {spec!r} is a graph, not a function. Fix: pass "
            f"--graph {spec}."
        )
    if not inspect.isroutine(target):
        raise CliError(
            f"--graph-factory {spec!r} is {_what(target)}. Fix: point it at a "
            "function that takes the saver and returns a compiled graph, or pass "
            "a StateGraph or compiled graph with --graph."
        )
    try:
        inspect.signature(target).bind(saver)
    except (TypeError, ValueError) as exc:
        raise CliError(
            f"--graph-factory {spec!r}: {_what(target)} cannot be called with one "
            f"argument, the saver ({exc}); it was not called. Fix: point it at a "
            "function saver -> compiled graph."
        ) from exc
    built = target(saver)
    if isinstance(built, StateGraph):
        return built.compile(checkpointer=cast(BaseCheckpointSaver[Any], saver))
    if isinstance(built, Pregel):
        return built
    raise CliError(
        f"--graph-factory {spec!r} returned {_what(built)}. Fix: return "
        "builder.compile(checkpointer=saver) from it."
    )


def graph_from_args(args: argparse.Namespace, saver: BaseRollbackSaver) -> Any:
    """The graph `plan` and `rollback` were given, bound to `saver`."""
    if args.graph_factory is not None:
        return load_graph_factory(args.graph_factory, saver)
    return load_graph(args.graph, saver)


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


def write_table(header: list[str], rows: list[list[str]], out: TextIO) -> None:
    """Rows as plain-text columns; the last column is not padded."""
    table = [header, *rows]
    widths = [max(len(r[i]) for r in table) for i in range(len(header) - 1)]
    for row in table:
        cells = [cell.ljust(widths[i]) for i, cell in enumerate(row[:-1])]
        out.write("  ".join([*cells, row[-1]]).rstrip() + "\n")


def print_table(effects: Sequence[Effect], out: TextIO) -> None:
    """The ledger as a plain-text table, newest first."""
    header = ["seq", "id", "status", "kind", "tool", "node", "checkpoint"]
    header += ["created (UTC)", "args"]
    write_table(header, [_effect_row(e, 48) for e in effects], out)
    if not effects:
        out.write("(no effects)\n")


def _decider_options(command: argparse.ArgumentParser) -> None:
    """`--by` and `--reason`, kept with the decision in the audit trail."""
    command.add_argument(
        "--by", default=None, help="who decides (default: your OS user name)"
    )
    command.add_argument("--reason", default=None, help="why, for the audit trail")


def operator(args: argparse.Namespace) -> str:
    """Who runs this command: `--by`, else the OS user, else "unknown"."""
    if args.by:
        return str(args.by)
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no user name for this uid (containers)
        return "unknown"


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
    if no_checkpoints:
        say_no_checkpoints(args, bool(effects))
    if args.json:
        out.write(
            json.dumps([e.model_dump(mode="json") for e in effects], indent=2) + "\n"
        )
    else:
        print_table(effects, out)
    return 0


def say_no_checkpoints(args: argparse.Namespace, has_effects: bool) -> None:
    """`effects` on a thread with no checkpoints: an error, or a note."""
    where = f"langgraph-rollback threads {args.db}"
    if not has_effects and args.status is None:
        raise CliError(
            f"Thread {args.thread!r} has no checkpoints and no effects in "
            f"{redact(args.db)}. Fix: check the thread id (`{where}` lists the "
            "threads there)."
        )
    sys.stderr.write(
        f"note: thread {args.thread!r} has no checkpoints (deleted, or never "
        "checkpointed); its effects are listed as the ledger keeps them.\n"
    )


def cmd_threads(args: argparse.Namespace, out: TextIO) -> int:
    with open_saver(args.db) as saver:
        rows = thread_rows(saver, args.limit)
    if args.json:
        out.write(json.dumps(rows, indent=2) + "\n")
        return 0
    if not rows:
        out.write(f"(no threads in {redact(args.db)})\n")
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
    if args.json:
        out.write(json.dumps(rows, indent=2) + "\n")
        return 0
    if not rows:
        out.write(f"(thread {args.thread!r} has no checkpoints)\n")
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


_Waiting = tuple[dict[str, Any], Mapping[str, Any]]
"""A row waiting for its parent, and the `versions_seen` of its checkpoint."""


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
            by=operator(args),
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
    """The ledger migrations this database has not run, as SQL text."""
    if _is_postgres(db):
        import psycopg

        from langgraph_rollback.savers import postgres_sql as pg

        with _connecting(db), psycopg.connect(db) as conn:
            exists = conn.execute("SELECT to_regclass('lgrb_migrations')").fetchone()
            current = -1
            if exists and exists[0]:
                row = conn.execute("SELECT max(v) FROM lgrb_migrations").fetchone()
                current = -1 if row is None or row[0] is None else int(row[0])
        return [pg.VERSION_TABLE, *pg.MIGRATIONS[current + 1 :]]
    from langgraph_rollback.savers import sqlite_sql as sq

    current = -1
    if Path(db).exists():
        with sqlite3.connect(db) as conn:
            found = conn.execute(
                "SELECT name FROM sqlite_master WHERE name = 'lgrb_migrations'"
            ).fetchone()
            if found:
                row = conn.execute("SELECT max(v) FROM lgrb_migrations").fetchone()
                current = -1 if row[0] is None else int(row[0])
    return [sq.VERSION_TABLE, *sq.MIGRATIONS[current + 1 :]]


def cmd_migrate(args: argparse.Namespace, out: TextIO) -> int:
    if args.print_sql:
        pending = _pending_sql(args.db)
        out.write("-- LangGraph's own tables are created by its setup() first.\n")
        for text in pending:
            out.write(text.strip().rstrip(";") + ";\n\n")
        if len(pending) == 1:
            out.write("-- The ledger is up to date.\n")
        return 0
    with open_saver(args.db, create=True) as saver:
        saver.setup()  # type: ignore[attr-defined]
    out.write(
        f"{redact(args.db)}: LangGraph's and the ledger's tables are up to date.\n"
    )
    return 0


def _version() -> str:
    from langgraph_rollback import __version__

    return __version__


def add_threads_parser(sub: Any) -> None:
    """The `threads` sub-command."""
    threads = sub.add_parser(
        "threads", help="the threads, with effect counts and last activity"
    )
    threads.add_argument("db", help="SQLite file or postgresql:// URL")
    threads.add_argument("--limit", type=_count, help="at most this many, latest first")
    threads.add_argument("--json", action="store_true", help="print JSON")
    threads.set_defaults(run=cmd_threads)


def add_graph_options(command: argparse.ArgumentParser) -> None:
    """`--graph` or `--graph-factory`, one of them required."""
    which = command.add_mutually_exclusive_group(required=True)
    which.add_argument(
        "--graph",
        metavar="MODULE:ATTR",
        help="your StateGraph or compiled graph (importing its module declares "
        "the tools; nothing is called)",
    )
    which.add_argument(
        "--graph-factory",
        metavar="MODULE:FUNCTION",
        help="a function that takes the saver and returns your compiled graph",
    )


def _count(text: str) -> int:
    """An argparse type: a whole number, 0 or more."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a count; pass a whole number, 0 or more (or leave "
            "--limit out for all)"
        )
    return value


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (one sub-command each)."""
    parser = argparse.ArgumentParser(
        prog="langgraph-rollback",
        description="Inspect the side-effect ledger of LangGraph threads and roll them back.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", required=True)
    add_threads_parser(sub)

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
                help="leave this effect as it is (repeat for more); kept in the "
                "audit trail",
            )
            _decider_options(command)
        command.set_defaults(run=run)

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

    migrate = sub.add_parser("migrate", help="create or upgrade the tables")
    migrate.add_argument("db", help="SQLite file or postgresql:// URL")
    migrate.add_argument("--print-sql", action="store_true", help="print, do not run")
    migrate.set_defaults(run=cmd_migrate)
    return parser


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    """Run the CLI; return its exit code."""
    args = build_parser().parse_args(argv)
    stream = out or sys.stdout
    try:
        code: int = args.run(args, stream)
    except (CliError, RollbackError) as exc:
        sys.stderr.write(f"error: {redact(str(exc), getattr(args, 'db', None))}\n")
        return 2
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
