"""What every command shares: opening the database, loading the graph, tables."""

from __future__ import annotations

import argparse
import getpass
import importlib
import inspect
import sqlite3
import sys
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any, TextIO, cast

from langgraph.checkpoint.base import BaseCheckpointSaver

from langgraph_rollback._redact import redact
from langgraph_rollback.core.report import one_line
from langgraph_rollback.savers.base import BaseRollbackSaver


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
        f"{_redact(db)}: no ledger tables here. Fix: pass the database your "
        "graph's rollback saver writes, or create the tables with "
        f"`langgraph-rollback migrate {_redact(db)}`."
    )
    if _is_postgres(db):
        need_postgres(db)
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


def need_postgres(db: str) -> None:
    """Refuse a PostgreSQL URL, in one line with what to install, when the
    PostgreSQL savers cannot be imported."""
    try:
        import langgraph_rollback.postgres  # noqa: F401
    except ImportError as exc:
        raise CliError(f"{_redact(db)} is a PostgreSQL URL. {exc}") from None


def _has_ledger(db: str) -> bool:
    """Whether the SQLite file `db` holds the ledger's tables (read-only)."""
    try:
        with closing(
            # as_uri() escapes a ? # or % in the path, which SQLite would read
            # as the URI's own (and open, or create, another file).
            sqlite3.connect(f"{Path(db).resolve().as_uri()}?mode=ro", uri=True)
        ) as conn:
            found = conn.execute(
                "SELECT 1 FROM sqlite_master WHERE name = 'lgrb_effects'"
            ).fetchone()
    except sqlite3.Error as exc:
        raise sqlite_error(db, exc) from exc
    return found is not None


def sqlite_error(db: str, exc: sqlite3.Error) -> CliError:
    """A failure of the SQLite file `db`, in one line with its fix: locked,
    read-only, cannot be opened, or not a SQLite database."""
    text = one_line(str(exc).strip()) or type(exc).__name__
    words = text.lower()
    if "locked" in words or "busy" in words:
        return CliError(
            f"{db}: the database is locked by another process ({text}). Fix: "
            "wait until the other writer (a running graph, another "
            "langgraph-rollback) is done, then run again; a rollback resumes "
            "where it stopped."
        )
    if "readonly" in words or "read-only" in words:
        return CliError(
            f"{db}: cannot write to it ({text}). Fix: run with write access to "
            "the file and its directory (SQLite writes its -wal and -journal "
            "files next to it); threads, effects and checkpoints only read."
        )
    if "unable to open" in words or isinstance(exc, sqlite3.OperationalError):
        return CliError(
            f"{db}: cannot open it ({text}). Fix: check that the path and its "
            "directory exist and that you may read and write both (a database "
            "in WAL mode needs its directory writable, even to be read), or "
            "work on a copy in a writable directory."
        )
    return CliError(
        f"{db}: not a SQLite database ({text}). Fix: pass the file your "
        "graph's SqliteRollbackSaver writes, or a postgresql:// URL."
    )


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
            f"cannot reach {_redact(db)}: {first}. Fix: check the URL, and that "
            "the server is running and accepts connections."
        ) from None


def _redact(url: str) -> str:
    """`url` without its password (`langgraph_rollback._redact`)."""
    return redact(url)


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
    except Exception as exc:  # the module's own code failed as it ran
        raise CliError(
            f"{option} {spec!r}: importing {module_name!r} raised "
            f"{_one_error(exc)}. Fix: make the module importable on its own "
            "(the settings it reads at import time), then run again."
        ) from exc
    target: Any = module
    for part in attr.split("."):
        if not hasattr(target, part):
            raise CliError(
                f"{option} {spec!r}: {module_name} has no attribute {attr!r}. "
                f"Fix: {_graphs_in(module, module_name, option)}"
            )
        target = getattr(target, part)
    return target


def _graphs_in(module: Any, module_name: str, option: str) -> str:
    """What to name after the colon: the module's graphs, if it has any."""
    from langgraph.graph import StateGraph
    from langgraph.pregel import Pregel

    names = sorted(
        name
        for name, value in vars(module).items()
        if isinstance(value, (StateGraph, Pregel)) and not name.startswith("_")
    )
    found = ", ".join(f"--graph {module_name}:{name}" for name in names)
    if option == "--graph-factory":
        also = f" (or pass its graph: {found})" if names else ""
        return f"name the function that takes the saver and returns the graph{also}."
    if not names:
        return (
            "name the StateGraph (the builder) or the compiled graph after the colon."
        )
    return f"{module_name} holds these graphs: {found}."


def _one_error(exc: BaseException) -> str:
    """`exc` as `Type: message`, on one line."""
    text = str(exc).strip()
    first = text.splitlines()[0] if text else ""
    return one_line(f"{type(exc).__name__}: {first}" if first else type(exc).__name__)


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
    try:
        built = target(saver)
    except Exception as exc:
        raise CliError(
            f"--graph-factory {spec!r} raised {_one_error(exc)} when called with "
            "the saver. Fix: make the factory build the graph from the saver "
            "alone (the settings it reads), then run again."
        ) from exc
    if isinstance(built, StateGraph):
        return built.compile(checkpointer=cast(BaseCheckpointSaver[Any], saver))
    if isinstance(built, Pregel):
        return _bound_to(built, spec, saver)
    raise CliError(
        f"--graph-factory {spec!r} returned {_what(built)}. Fix: return "
        "builder.compile(checkpointer=saver) from it."
    )


def _bound_to(graph: Any, spec: str, saver: BaseRollbackSaver) -> Any:
    """The factory's compiled `graph`, if its checkpointer is `saver` (or
    wraps it, the `find_saver` rule); one compiled without a checkpointer is
    bound to `saver`."""
    from langgraph_rollback._langgraph import find_saver

    if graph.checkpointer is None:
        return graph.copy(update={"checkpointer": saver})
    if find_saver(graph.checkpointer) is saver:
        return graph
    raise CliError(
        f"--graph-factory {spec!r} returned a graph whose checkpointer is "
        f"{_what(graph.checkpointer)}, not the saver it was given for this "
        "database: the command would act on another store. Fix: return "
        "builder.compile(checkpointer=saver) with the saver it is called with."
    )


def graph_from_args(args: argparse.Namespace, saver: BaseRollbackSaver) -> Any:
    """The graph `plan` and `rollback` were given, bound to `saver`."""
    if args.graph_factory is not None:
        return load_graph_factory(args.graph_factory, saver)
    return load_graph(args.graph, saver)


def write_table(header: list[str], rows: list[list[str]], out: TextIO) -> None:
    """Rows as plain-text columns; the last column is not padded.

    Control characters in a cell (a newline, an escape sequence) are printed
    escaped (`\\n`), so a thread id or a `--by` cannot forge rows or reach the
    terminal."""
    table = [[one_line(cell) for cell in row] for row in [header, *rows]]
    widths = [max(len(r[i]) for r in table) for i in range(len(header) - 1)]
    for row in table:
        cells = [cell.ljust(widths[i]) for i, cell in enumerate(row[:-1])]
        out.write("  ".join([*cells, row[-1]]).rstrip() + "\n")


def _decider_options(command: argparse.ArgumentParser) -> None:
    """`--by` and `--reason`, kept with the decision in the audit trail."""
    command.add_argument(
        "--by", default=None, help="who decides (default: your OS user name)"
    )
    command.add_argument("--reason", default=None, help="why, for the audit trail")


def operator(args: argparse.Namespace) -> str:
    """Who runs this command: `--by`, else the OS user, else "unknown".

    Raises:
        CliError: `--by` or `--reason` is blank.
    """
    check_decider_options(args)
    return str(args.by) if args.by is not None else _os_user()


def check_decider_options(args: argparse.Namespace) -> None:
    """Refuse a blank `--by` or `--reason`, in the command line's words."""
    for option, value in (("--by", args.by), ("--reason", args.reason)):
        if value is not None and not value.strip():
            raise CliError(
                f"{option} {value!r} is blank. Fix: pass "
                + ("who decides (e.g. --by alice)" if option == "--by" else "why")
                + f", or leave {option} out"
                + (" for your OS user name." if option == "--by" else ".")
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
    return min(value, _MAX_LIMIT)


_MAX_LIMIT = 2**63 - 1
"""The largest LIMIT SQLite and PostgreSQL take; a larger one lists all."""


def _os_user() -> str:
    """The OS user's name, or "unknown" (no name for this uid, in containers)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def _version() -> str:
    from langgraph_rollback import __version__

    return __version__


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
