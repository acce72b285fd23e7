"""Reversible row changes in SQLite or PostgreSQL: insert, update, delete.

```python
from langgraph_rollback.batteries.sql import SqlDatabase, sql_tools

db = SqlDatabase.sqlite("app.sqlite", name="app")      # or SqlDatabase.postgres(url, name="app")
tools = sql_tools(db)     # insert_rows, update_rows, delete_rows
```

Each tool changes rows of one table and, in the same database transaction,
captures the rows it touched before and after (their "images", keyed by the
table's primary key). The model sees a short summary; the images are the
tool's artifact, recorded in the ledger. A rollback restores the before-images
(re-inserting deleted rows, deleting inserted ones, putting updated ones
back) in one transaction, after checking that each row still equals its
after-image: a row someone changed since is *drift*, and the inverse fails
with `RowDriftError` (nothing is overwritten) unless the database was declared
with `on_drift="overwrite"`.

Tables and columns are checked against the database's own schema, and every
value is bound, so model-written arguments cannot inject SQL. A rollback finds
the database by its `name` (declare it again, with `sql_tools`, in the process
that rolls back).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

from langchain_core.tools import BaseTool, StructuredTool

from langgraph_rollback._declare import reversible
from langgraph_rollback._errors import InvalidConfigError, RollbackError
from langgraph_rollback._models import Effect
from langgraph_rollback.core.registry import ToolRegistry

__all__ = ["RowDriftError", "SqlDatabase", "sql_tools"]

DATABASES: dict[str, SqlDatabase] = {}
"""Databases declared in this process, by name, for the inverses to find."""


class RowDriftError(RollbackError):
    """Rows changed since the agent wrote them; the inverse left them alone.

    Attributes:
        table: The table.
        keys: The primary keys of the drifted rows.
    """

    def __init__(self, *, table: str, keys: list[Any]) -> None:
        super().__init__(
            f"{len(keys)} row(s) of {table!r} changed since the agent wrote them "
            f"(keys {keys[:5]}); restoring the before-images would overwrite those "
            "changes, so nothing was restored. Fix: check the rows, then declare "
            "the database with on_drift='overwrite' (or mark the effect with "
            "saver.resolve_effect(..., compensated=True)) and roll back again."
        )
        self.table = table
        self.keys = keys


@dataclass
class SqlDatabase:
    """How to reach a database, and what to call it in the ledger.

    Use `SqlDatabase.sqlite(path, name=...)` or `SqlDatabase.postgres(url, name=...)`.
    """

    name: str
    dialect: Literal["sqlite", "postgres"]
    connect: Callable[[], Any]
    on_drift: Literal["fail", "overwrite"] = "fail"

    @classmethod
    def sqlite(
        cls, path: str, *, name: str, on_drift: Literal["fail", "overwrite"] = "fail"
    ) -> SqlDatabase:
        """A SQLite file."""
        return cls(
            name,
            "sqlite",
            lambda: sqlite3.connect(path, isolation_level=None),
            on_drift,
        )

    @classmethod
    def postgres(
        cls, url: str, *, name: str, on_drift: Literal["fail", "overwrite"] = "fail"
    ) -> SqlDatabase:
        """A PostgreSQL database (needs psycopg)."""
        import psycopg

        return cls(name, "postgres", lambda: psycopg.connect(url), on_drift)

    @property
    def mark(self) -> str:
        return "?" if self.dialect == "sqlite" else "%s"

    @contextmanager
    def transaction(self) -> Iterator[Any]:
        """A cursor in one transaction: committed on success, rolled back on error."""
        conn = self.connect()
        try:
            cur = conn.cursor()
            if self.dialect == "sqlite":
                # Take the write lock before the first read, so the images
                # read are the rows written (no other writer in between).
                cur.execute("BEGIN IMMEDIATE")
            try:
                yield cur
            except BaseException:
                conn.rollback()
                raise
            conn.commit()
        finally:
            conn.close()

    def schema(self, cur: Any, table: str) -> tuple[list[str], list[str]]:
        """The table's columns and primary-key columns, or InvalidConfigError."""
        if self.dialect == "sqlite":
            cur.execute("SELECT name FROM pragma_table_info(?) ORDER BY cid", (table,))
            columns = [r[0] for r in cur.fetchall()]
            cur.execute(
                "SELECT name FROM pragma_table_info(?) WHERE pk > 0 ORDER BY pk",
                (table,),
            )
            keys = [r[0] for r in cur.fetchall()]
        else:
            cur.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_name = %s "
                "AND table_schema = current_schema() ORDER BY ordinal_position",
                (table,),
            )
            columns = [r[0] for r in cur.fetchall()]
            cur.execute(
                "SELECT a.attname FROM pg_index i "
                "JOIN pg_class c ON c.oid = i.indrelid "
                "JOIN pg_namespace n ON n.oid = c.relnamespace "
                "JOIN pg_attribute a ON a.attrelid = i.indrelid "
                "AND a.attnum = ANY(i.indkey) "
                "WHERE c.relname = %s AND n.nspname = current_schema() "
                "AND i.indisprimary ORDER BY array_position(i.indkey::int2[], a.attnum)",
                (table,),
            )
            keys = [r[0] for r in cur.fetchall()]
        if not columns:
            raise InvalidConfigError(
                f"Database {self.name!r} has no table {table!r}. Fix: use one of its tables."
            )
        if not keys:
            raise InvalidConfigError(
                f"Table {table!r} has no primary key, so its rows cannot be restored "
                "one by one. Fix: give it a primary key."
            )
        return columns, keys


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _check(columns: Sequence[str], names: Sequence[str], table: str) -> None:
    unknown = [n for n in names if n not in columns]
    if unknown:
        raise InvalidConfigError(
            f"Table {table!r} has no column(s) {unknown}. Fix: use its columns: "
            f"{', '.join(columns)}."
        )


class _Rows:
    """Row reads and writes of one table, inside one transaction."""

    def __init__(self, db: SqlDatabase, cur: Any, table: str) -> None:
        self.db, self.cur, self.table = db, cur, table
        self.columns, self.keys = db.schema(cur, table)
        self.q = _quote(table)

    def where(self, where: dict[str, Any]) -> tuple[str, list[Any]]:
        if not where:
            raise InvalidConfigError(
                f"An empty `where` would touch every row of {self.table!r}. Fix: "
                "name the rows, e.g. where={'id': 42}."
            )
        _check(self.columns, list(where), self.table)
        return (
            " AND ".join(f"{_quote(c)} = {self.db.mark}" for c in where),
            list(where.values()),
        )

    def fetch(self, clause: str, params: list[Any]) -> list[dict[str, Any]]:
        # PostgreSQL: lock the rows read, so they cannot change before the
        # write (SQLite already holds the database's write lock).
        lock = " FOR UPDATE" if self.db.dialect == "postgres" else ""
        self.cur.execute(f"SELECT * FROM {self.q} WHERE {clause}{lock}", params)
        names = [d[0] for d in self.cur.description]
        return [dict(zip(names, row, strict=True)) for row in self.cur.fetchall()]

    def key_of(self, row: dict[str, Any]) -> str:
        return json.dumps([row[k] for k in self.keys], default=str)

    def by_key(self, key: str) -> dict[str, Any] | None:
        values = json.loads(key)
        clause = " AND ".join(f"{_quote(k)} = {self.db.mark}" for k in self.keys)
        rows = self.fetch(clause, values)
        return rows[0] if rows else None

    def put(self, row: dict[str, Any]) -> None:
        self.delete(self.key_of(row))
        names = list(row)
        marks = ", ".join([self.db.mark] * len(names))
        self.cur.execute(
            f"INSERT INTO {self.q} ({', '.join(_quote(n) for n in names)}) VALUES ({marks})",
            list(row.values()),
        )

    def delete(self, key: str) -> None:
        clause = " AND ".join(f"{_quote(k)} = {self.db.mark}" for k in self.keys)
        self.cur.execute(f"DELETE FROM {self.q} WHERE {clause}", json.loads(key))


def _images(
    rows: _Rows, before: list[dict[str, Any]], after: list[dict[str, Any]]
) -> dict[str, Any]:
    return {
        "database": rows.db.name,
        "table": rows.table,
        "before": {rows.key_of(r): r for r in before},
        "after": {rows.key_of(r): r for r in after},
    }


def restore_rows(effect: Effect) -> str:
    images = effect.result[1] if isinstance(effect.result, (list, tuple)) else None
    if not images:
        raise RollbackError(
            f"Effect {effect.id} recorded no row images (its result is "
            f"{effect.result!r}); nothing can be restored. Fix: inspect the table."
        )
    db = DATABASES.get(images["database"])
    if db is None:
        raise RollbackError(
            f"No database named {images['database']!r} is declared in this process. "
            "Fix: call sql_tools(SqlDatabase...(name=...)) before rolling back."
        )
    with db.transaction() as cur:
        rows = _Rows(db, cur, images["table"])
        touched = sorted(set(images["before"]) | set(images["after"]))
        drifted = [k for k in touched if rows.by_key(k) != images["after"].get(k)]
        if drifted and db.on_drift == "fail":
            raise RowDriftError(
                table=images["table"], keys=[json.loads(k) for k in drifted]
            )
        for key in touched:
            if key in images["before"]:
                rows.put(images["before"][key])
            else:
                rows.delete(key)
    return f"restored {len(touched)} row(s) of {images['table']}"


def sql_tools(
    db: SqlDatabase, *, registry: ToolRegistry | None = None
) -> list[BaseTool]:
    """`insert_rows`, `update_rows` and `delete_rows` on `db`, declared reversible.

    One database per registry under these names (another raises
    `DuplicateToolError`; give each its own `ToolRegistry`).
    """
    DATABASES[db.name] = db

    def insert_rows(
        table: str, rows: list[dict[str, Any]]
    ) -> tuple[str, dict[str, Any]]:
        """Insert `rows` (dicts of column values) into `table`."""
        with db.transaction() as cur:
            t = _Rows(db, cur, table)
            inserted = []
            for row in rows:
                _check(t.columns, list(row), table)
                names = list(row)
                marks = ", ".join([db.mark] * len(names))
                cur.execute(
                    f"INSERT INTO {t.q} ({', '.join(_quote(n) for n in names)}) "
                    f"VALUES ({marks}) RETURNING *",
                    list(row.values()),
                )
                columns = [d[0] for d in cur.description]
                inserted.append(dict(zip(columns, cur.fetchone(), strict=True)))
            return f"inserted {len(inserted)} row(s) into {table}", _images(
                t, [], inserted
            )

    def update_rows(
        table: str, where: dict[str, Any], values: dict[str, Any]
    ) -> tuple[str, dict[str, Any]]:
        """Set `values` on the rows of `table` matching `where` (column equalities)."""
        with db.transaction() as cur:
            t = _Rows(db, cur, table)
            clause, params = t.where(where)
            _check(t.columns, list(values), table)
            if moved := [k for k in t.keys if k in values]:
                raise InvalidConfigError(
                    f"update_rows cannot change primary-key column(s) {moved} of "
                    f"{table!r}: rows are restored by key. Fix: delete the row and "
                    "insert it under its new key."
                )
            before = t.fetch(clause, params)
            sets = ", ".join(f"{_quote(c)} = {db.mark}" for c in values)
            cur.execute(
                f"UPDATE {t.q} SET {sets} WHERE {clause}", [*values.values(), *params]
            )
            after = [t.by_key(t.key_of(r)) for r in before]
            rows_after = [r for r in after if r is not None]
            return f"updated {len(before)} row(s) of {table}", _images(
                t, before, rows_after
            )

    def delete_rows(table: str, where: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        """Delete the rows of `table` matching `where` (column equalities)."""
        with db.transaction() as cur:
            t = _Rows(db, cur, table)
            clause, params = t.where(where)
            before = t.fetch(clause, params)
            cur.execute(f"DELETE FROM {t.q} WHERE {clause}", params)
            return f"deleted {len(before)} row(s) of {table}", _images(t, before, [])

    declared: list[BaseTool] = []
    for fn in (insert_rows, update_rows, delete_rows):
        fn.__qualname__ = f"sql_tools[{db.name}].{fn.__name__}"
        lc_tool = StructuredTool.from_function(
            fn, response_format="content_and_artifact"
        )
        declared.append(
            reversible(undo=restore_rows, kind="reversible", registry=registry)(lc_tool)
        )
    return declared
