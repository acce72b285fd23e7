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
in one transaction, after checking that each row still equals its
after-image: a row someone changed since is *drift*, and the inverse fails
with `RowDriftError` (nothing is overwritten) unless the database was declared
with `on_drift="overwrite"`.

What it restores: the rows the statement names, and every row foreign keys
change with them (a table's references to itself included): the schema is
walked recursively (SQLite's
`pragma_foreign_key_list`, PostgreSQL's `pg_constraint`) for ON DELETE (and,
for the columns an update sets, ON UPDATE) CASCADE, SET NULL and SET DEFAULT,
and the rows found are imaged before the statement runs and read again after
it (SQLite applies them only with `PRAGMA foreign_keys=ON` on the battery's
connection: `SqlDatabase.sqlite(..., foreign_keys=True)`). Rows are put back
parents first, by UPDATE when the row exists (so no ON DELETE action fires)
and INSERT otherwise; rows the statement created are removed children first.

What it refuses (`HiddenEffectsError`, before the call runs and again at
rollback time): a table, or a table a cascade reaches, with triggers, rules
(PostgreSQL), inheriting tables and partitions, or (SQLite) an ON CONFLICT
REPLACE clause, whose effects it cannot see; a referencing table in another
schema. Before the call (`InvalidConfigError`): rows whose primary key is
NULL (SQLite allows it), which one image key cannot tell apart. At rollback
time (`RowDriftError`, nothing restored): removing an inserted row that rows
outside the images now reference, and putting a row back by UPDATE when its
ON UPDATE actions would change rows outside the images.

Not restored: sequences an undone insert advanced (SERIAL, identity,
AUTOINCREMENT) are not rewound, since other sessions may have drawn from
them since; the inverse's result names them. json and jsonb values are bound
as such; a GENERATED ALWAYS identity column is put back on INSERT
(OVERRIDING SYSTEM VALUE) and never updated.

Tables and columns are checked against the database's own schema, and every
value is bound, so model-written arguments cannot inject SQL. A rollback finds
the database by its `name` (declare it again, with `sql_tools`, in the process
that rolls back).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

from langchain_core.tools import BaseTool, StructuredTool

from langgraph_rollback._declare import reversible
from langgraph_rollback._errors import InvalidConfigError, RollbackError
from langgraph_rollback._models import Effect
from langgraph_rollback.batteries._sql_rows import (
    Cascade,
    Rows,
    check_columns,
    images_of,
    key_values,
    parents_first,
    quote,
)
from langgraph_rollback.batteries._sql_schema import HiddenEffectsError
from langgraph_rollback.core.registry import ToolRegistry

__all__ = ["HiddenEffectsError", "RowDriftError", "SqlDatabase", "sql_tools"]

DATABASES: dict[str, SqlDatabase] = {}
"""Databases declared in this process, by name, for the inverses to find."""


class RowDriftError(RollbackError):
    """Rows changed since the agent wrote them; the inverse left them alone.

    Attributes:
        table: The table.
        keys: The primary keys of the drifted rows.
    """

    def __init__(
        self,
        *,
        table: str,
        keys: list[Any],
        why: str = "changed since the agent wrote them",
    ) -> None:
        super().__init__(
            f"{len(keys)} row(s) of {table!r} {why} (keys {keys[:5]}); restoring the "
            "before-images would overwrite or remove them, so nothing was restored. "
            "Fix: check the rows, then declare the database with on_drift='overwrite' "
            "(or mark the effect with saver.resolve_effect(..., compensated=True)) "
            "and roll back again."
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
        cls,
        path: str,
        *,
        name: str,
        on_drift: Literal["fail", "overwrite"] = "fail",
        foreign_keys: bool = False,
    ) -> SqlDatabase:
        """A SQLite file; `foreign_keys=True` turns on `PRAGMA foreign_keys`
        for the battery's connections (SQLite leaves it off by default)."""

        def connect() -> sqlite3.Connection:
            conn = sqlite3.connect(path, isolation_level=None)
            if foreign_keys:
                conn.execute("PRAGMA foreign_keys = ON")
            return conn

        return cls(name, "sqlite", connect, on_drift)

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

    def writable_columns(self, cur: Any, table: str) -> list[str]:
        """The table's columns a row can be written to (generated ones left out)."""
        if self.dialect == "sqlite":
            # table_info leaves out generated columns (table_xinfo shows them).
            cur.execute("SELECT name FROM pragma_table_info(?)", (table,))
        else:
            cur.execute(
                "SELECT column_name FROM information_schema.columns WHERE "
                "table_name = %s AND table_schema = current_schema() "
                "AND is_generated = 'NEVER'",
                (table,),
            )
        return [r[0] for r in cur.fetchall()]

    def special_columns(self, cur: Any, table: str) -> tuple[set[str], set[str]]:
        """The table's json/jsonb columns (bound wrapped) and its GENERATED
        ALWAYS identity columns (never updated); none in SQLite."""
        if self.dialect == "sqlite":
            return set(), set()
        cur.execute(
            "SELECT column_name, data_type IN ('json', 'jsonb'), "
            "is_identity = 'YES' AND identity_generation = 'ALWAYS' "
            "FROM information_schema.columns WHERE "
            "table_name = %s AND table_schema = current_schema()",
            (table,),
        )
        found = cur.fetchall()
        return {r[0] for r in found if r[1]}, {r[0] for r in found if r[2]}

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


def restore_rows(effect: Effect) -> str:
    """Put back every row the effect's statement changed, cascades included.

    Parents are restored before the rows that reference them; rows the
    statement created are removed children first. Refuses (nothing restored)
    when a row drifted, when rows outside the images reference a row to
    remove, or when a table has gained a trigger or rule.
    """
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
    parts = [images, *images.get("cascaded", [])]
    with db.transaction() as cur:
        main = Rows(db, cur, images["table"])
        walk = Cascade(db, cur, main)
        for part in parts[1:]:
            walk.tables.setdefault(part["table"], Rows(db, cur, part["table"]))
        walk.refuse_hidden(
            effect.tool, images["table"], "at rollback time; nothing was restored"
        )
        for part in parts:
            _refuse_drift(db, walk.tables[part["table"]], part)
        removals = [
            (p["table"], row)
            for p in parts
            for k, row in p["after"].items()
            if k not in p["before"]
        ]
        _refuse_referenced(db, cur, walk.tables, removals)
        _refuse_set_off(db, cur, walk.tables, parts)
        sequences = sorted(
            {q for t, _row in removals for q in _sequences_of(db, cur, t)}
        )
        for table, row in reversed(parents_first(db, cur, walk.tables, removals)):
            walk.tables[table].delete(walk.tables[table].key_of(row))
        puts = [(p["table"], row) for p in parts for row in p["before"].values()]
        for table, row in parents_first(db, cur, walk.tables, puts):
            walk.tables[table].put(row)
    touched = sum(len(set(p["before"]) | set(p["after"])) for p in parts)
    others = (
        f" (and rows of {', '.join(p['table'] for p in parts[1:])})"
        if parts[1:]
        else ""
    )
    kept = (
        f"; sequence(s) {', '.join(sequences)} are not rewound: the values the "
        "removed row(s) took stay used"
        if sequences
        else ""
    )
    return f"restored {touched} row(s) of {images['table']}{others}{kept}"


def _sequences_of(db: SqlDatabase, cur: Any, table: str) -> list[str]:
    """The sequences an insert into `table` advances (SERIAL, identity,
    SQLite's AUTOINCREMENT)."""
    if db.dialect == "sqlite":
        cur.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'sqlite_sequence'"
        )
        if cur.fetchone() is None:
            return []
        cur.execute("SELECT 1 FROM sqlite_sequence WHERE name = ?", (table,))
        return [f"sqlite_sequence[{table}]"] if cur.fetchone() else []
    cur.execute(
        "SELECT pg_get_serial_sequence(quote_ident(n.nspname) || '.' || "
        "quote_ident(c.relname), a.attname) FROM pg_attribute a "
        "JOIN pg_class c ON c.oid = a.attrelid "
        "JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE c.relname = %s AND n.nspname = current_schema() "
        "AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
        (table,),
    )
    return [str(r[0]) for r in cur.fetchall() if r[0]]


def _refuse_set_off(
    db: SqlDatabase, cur: Any, tables: dict[str, Rows], parts: list[dict[str, Any]]
) -> None:
    """Refuse to put back a row by UPDATE when its ON UPDATE actions would
    change rows outside the images (rows someone added since)."""
    imaged = {(p["table"], k) for p in parts for k in (*p["before"], *p["after"])}
    for part in parts:
        rows = tables[part["table"]]
        for key, row in part["before"].items():
            now = rows.by_key(key)
            if now is None:  # put back by INSERT: no ON UPDATE action fires
                continue
            changed = frozenset(c for c in row if now.get(c) != row[c])
            if not changed:
                continue
            walk = Cascade(db, cur, rows)
            walk.tables.update(tables)
            walk.walk(part["table"], [now], changed)
            extra = [
                (name, k)
                for name, found in walk.rows.items()
                for k in found
                if (name, k) not in imaged
            ]
            if extra:
                name = extra[0][0]
                raise RowDriftError(
                    table=name,
                    keys=[key_values(k) for n, k in extra if n == name],
                    why="reference rows the rollback would change back, and their "
                    "foreign keys' ON UPDATE actions would change them too",
                )


def _refuse_drift(db: SqlDatabase, rows: Rows, part: dict[str, Any]) -> None:
    touched = sorted(set(part["before"]) | set(part["after"]))
    drifted = [k for k in touched if rows.by_key(k) != part["after"].get(k)]
    if drifted and db.on_drift == "fail":
        raise RowDriftError(table=rows.table, keys=[key_values(k) for k in drifted])


def _refuse_referenced(
    db: SqlDatabase,
    cur: Any,
    tables: dict[str, Rows],
    removals: list[tuple[str, dict[str, Any]]],
) -> None:
    """Refuse to remove rows that rows outside the images now reference."""
    doomed = {(t, tables[t].key_of(r)) for t, r in removals}
    for table in {t for t, _ in removals}:
        walk = Cascade(db, cur, tables[table])
        walk.tables.update(tables)
        walk.walk(table, [r for t, r in removals if t == table], None)
        extra = [
            (name, key)
            for name, rows in walk.rows.items()
            for key in rows
            if (name, key) not in doomed
        ]
        if extra:
            name = extra[0][0]
            raise RowDriftError(
                table=name,
                keys=[key_values(k) for n, k in extra if n == name],
                why="now reference rows the agent inserted, and removing those would change them",
            )


def _insert_rows(db: SqlDatabase) -> Callable[..., tuple[str, dict[str, Any]]]:
    def insert_rows(
        table: str, rows: list[dict[str, Any]]
    ) -> tuple[str, dict[str, Any]]:
        """Insert `rows` (dicts of column values) into `table`."""
        with db.transaction() as cur:
            t = Rows(db, cur, table)
            Cascade(db, cur, t).refuse_hidden("insert_rows", table, "before it ran")
            inserted = []
            for row in rows:
                check_columns(t.columns, list(row), table)
                names = list(row)
                marks = ", ".join([db.mark] * len(names))
                cur.execute(
                    f"INSERT INTO {t.q} ({', '.join(quote(n) for n in names)}) "
                    f"VALUES ({marks}) RETURNING *",
                    [t.bind(n, v) for n, v in row.items()],
                )
                columns = [d[0] for d in cur.description]
                inserted.append(dict(zip(columns, cur.fetchone(), strict=True)))
            return f"inserted {len(inserted)} row(s) into {table}", images_of(
                t, [], inserted
            )

    return insert_rows


def _update_rows(db: SqlDatabase) -> Callable[..., tuple[str, dict[str, Any]]]:
    def update_rows(
        table: str, where: dict[str, Any], values: dict[str, Any]
    ) -> tuple[str, dict[str, Any]]:
        """Set `values` on the rows of `table` matching `where` (column equalities)."""
        with db.transaction() as cur:
            t = Rows(db, cur, table)
            clause, params = t.where(where)
            check_columns(t.columns, list(values), table)
            if moved := [k for k in t.keys if k in values]:
                raise InvalidConfigError(
                    f"update_rows cannot change primary-key column(s) {moved} of "
                    f"{table!r}: rows are restored by key. Fix: delete the row and "
                    "insert it under its new key."
                )
            before = t.fetch(clause, params)
            walk = Cascade(db, cur, t)
            walk.walk(table, before, frozenset(values))
            walk.refuse_hidden("update_rows", table, "before it ran")
            sets = ", ".join(f"{quote(c)} = {db.mark}" for c in values)
            cur.execute(
                f"UPDATE {t.q} SET {sets} WHERE {clause}",
                [*(t.bind(c, v) for c, v in values.items()), *params],
            )
            after = [t.by_key(t.key_of(r)) for r in before]
            rows_after = [r for r in after if r is not None]
            return f"updated {len(before)} row(s) of {table}", images_of(
                t, before, rows_after, walk.images_after(table, before)
            )

    return update_rows


def _delete_rows(db: SqlDatabase) -> Callable[..., tuple[str, dict[str, Any]]]:
    def delete_rows(table: str, where: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        """Delete the rows of `table` matching `where` (column equalities).

        Rows of other tables that foreign keys delete or change with them
        (ON DELETE CASCADE, SET NULL, SET DEFAULT) are imaged too.
        """
        with db.transaction() as cur:
            t = Rows(db, cur, table)
            clause, params = t.where(where)
            before = t.fetch(clause, params)
            walk = Cascade(db, cur, t)
            walk.walk(table, before, None)
            walk.refuse_hidden("delete_rows", table, "before it ran")
            cur.execute(f"DELETE FROM {t.q} WHERE {clause}", params)
            cascaded = walk.images_after(table, before)
            note = (
                f" (and {sum(len(c['before']) for c in cascaded)} referencing row(s))"
                if cascaded
                else ""
            )
            return f"deleted {len(before)} row(s) of {table}{note}", images_of(
                t, before, [], cascaded
            )

    return delete_rows


def sql_tools(
    db: SqlDatabase, *, registry: ToolRegistry | None = None
) -> list[BaseTool]:
    """`insert_rows`, `update_rows` and `delete_rows` on `db`, declared reversible.

    One database per registry under these names (another raises
    `DuplicateToolError`; give each its own `ToolRegistry`).
    """
    DATABASES[db.name] = db
    declared: list[BaseTool] = []
    for fn in (_insert_rows(db), _update_rows(db), _delete_rows(db)):
        fn.__qualname__ = f"sql_tools[{db.name}].{fn.__name__}"
        lc_tool = StructuredTool.from_function(
            fn, response_format="content_and_artifact"
        )
        declared.append(
            reversible(undo=restore_rows, kind="reversible", registry=registry)(lc_tool)
        )
    return declared
