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

import sqlite3
import sys
from collections.abc import Sequence
from typing import TextIO

from langgraph_rollback._errors import RollbackError
from langgraph_rollback._redact import redact
from langgraph_rollback.cli._common import CliError, _is_postgres, sqlite_error
from langgraph_rollback.cli._parser import build_parser

__all__ = ["build_parser", "main"]


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    """Run the CLI; return its exit code."""
    args = build_parser().parse_args(argv)
    stream = out or sys.stdout
    try:
        code: int = args.run(args, stream)
    except sqlite3.Error as exc:
        db = str(getattr(args, "db", "") or "")
        if _is_postgres(db):
            raise
        sys.stderr.write(f"error: {sqlite_error(db, exc)}\n")
        return 2
    except (CliError, RollbackError) as exc:
        sys.stderr.write(f"error: {redact(str(exc), getattr(args, 'db', None))}\n")
        return 2
    return code
