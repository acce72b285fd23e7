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
change with them: the schema is walked recursively (SQLite's
`pragma_foreign_key_list`, PostgreSQL's `pg_constraint`) for ON DELETE (and,
for the columns an update sets, ON UPDATE) CASCADE, SET NULL and SET DEFAULT,
and the rows found are imaged before the statement runs and read again after
it (SQLite applies them only with `PRAGMA foreign_keys=ON` on the battery's
connection: `SqlDatabase.sqlite(..., foreign_keys=True)`). Rows are put back
parents first, by UPDATE when the row exists (so no ON DELETE action fires)
and INSERT otherwise; rows the statement created are removed children first.

What it refuses (`HiddenEffectsError`, before the call runs and again at
rollback time): a table, or a table a cascade reaches, with triggers, rules
(PostgreSQL) or inheriting tables and partitions, whose effects it cannot
see; a referencing table in another schema. And, at rollback time, removing
an inserted row that rows outside the images now reference (`RowDriftError`).

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
from langgraph_rollback.batteries._sql_schema import (
    ACTIONS,
    ForeignKey,
    hidden_effects,
    references_from,
    references_to,
)
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


class HiddenEffectsError(RollbackError):
    """The schema shows row changes the battery cannot image (triggers, rules,
    inheriting tables), so the call or its inverse was refused before it ran.

    Attributes:
        table: The table the call names.
        effects: `(table, what)` for each trigger, rule or inheriting table.
    """

    def __init__(
        self, *, tool: str, table: str, found: list[tuple[str, str, str]], when: str
    ) -> None:
        whats = ", ".join(f"{what} on {t!r}" for t, what, _fix in found)
        fixes = "; ".join(dict.fromkeys(fix for _t, _w, fix in found))
        super().__init__(
            f"{tool} on {table!r} was refused {when}: {whats} can change rows the "
            "SQL battery does not see, so a rollback could not restore exactly what "
            f"was there. Fix: {fixes} (or make the change through a tool of your "
            "own whose inverse knows what they do)."
        )
        self.table = table
        self.effects = [(t, what) for t, what, _fix in found]


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
        self.writable = set(db.writable_columns(cur, table))
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

    def matching(
        self, columns: tuple[str, ...], values: list[tuple[Any, ...]]
    ) -> list[dict[str, Any]]:
        """The rows whose `columns` equal one of `values` (locked, in PostgreSQL)."""
        one = "(" + " AND ".join(f"{_quote(c)} = {self.db.mark}" for c in columns) + ")"
        found: list[dict[str, Any]] = []
        for start in range(0, len(values), 100):
            chunk = values[start : start + 100]
            clause = " OR ".join([one] * len(chunk))
            found += self.fetch(clause, [v for value in chunk for v in value])
        return found

    def put(self, row: dict[str, Any]) -> None:
        """Make the row with `row`'s key hold `row`: an update if it exists (so
        no ON DELETE action fires), else an insert."""
        key = self.key_of(row)
        if self.by_key(key) is None:
            names = [n for n in row if n in self.writable]
            marks = ", ".join([self.db.mark] * len(names))
            # PostgreSQL: put back the recorded value of a GENERATED ALWAYS
            # identity column too.
            override = (
                " OVERRIDING SYSTEM VALUE" if self.db.dialect == "postgres" else ""
            )
            self.cur.execute(
                f"INSERT INTO {self.q} ({', '.join(_quote(n) for n in names)})"
                f"{override} VALUES ({marks})",
                [row[n] for n in names],
            )
            return
        others = [n for n in row if n not in self.keys and n in self.writable]
        if not others:
            return
        sets = ", ".join(f"{_quote(n)} = {self.db.mark}" for n in others)
        clause = " AND ".join(f"{_quote(k)} = {self.db.mark}" for k in self.keys)
        self.cur.execute(
            f"UPDATE {self.q} SET {sets} WHERE {clause}",
            [row[n] for n in others] + json.loads(key),
        )

    def delete(self, key: str) -> None:
        clause = " AND ".join(f"{_quote(k)} = {self.db.mark}" for k in self.keys)
        self.cur.execute(f"DELETE FROM {self.q} WHERE {clause}", json.loads(key))


Change = frozenset[str] | None
"""How a statement changes a row: the columns it sets, or None when it deletes it."""


def _broader(old: Change | str, new: Change) -> Change:
    if old == "unseen":
        return new
    if old is None or new is None:
        return None
    assert isinstance(old, frozenset)
    return old | new


class _Cascade:
    """Every row a statement may change, found by walking the foreign keys.

    Starting from the rows the statement names, each foreign key that
    references them with ON DELETE (or, for the columns an update sets, ON
    UPDATE) CASCADE, SET NULL or SET DEFAULT adds the referencing rows, and
    so on recursively. The result is a superset: rows that end up unchanged
    are dropped after the statement.
    """

    def __init__(self, db: SqlDatabase, cur: Any, start: _Rows) -> None:
        self.db, self.cur = db, cur
        self.tables: dict[str, _Rows] = {start.table: start}
        self.rows: dict[str, dict[str, dict[str, Any]]] = {}
        self.modes: dict[tuple[str, str], Change] = {}

    def walk(self, table: str, rows: list[dict[str, Any]], change: Change) -> None:
        queue = [(table, self._add(table, rows, change), change)]
        while queue:
            parent, batch, how = queue.pop()
            for fk in references_to(self.db.dialect, self.cur, parent):
                action = (
                    fk.on_delete
                    if how is None
                    else (fk.on_update if how & set(fk.parent_columns) else "no action")
                )
                if action not in ACTIONS or not batch:
                    continue
                child_change: Change = (
                    None
                    if how is None and action == "cascade"
                    else frozenset(fk.child_columns)
                )
                found = self._referencing(fk, batch)
                fresh = self._add(fk.child, found, child_change)
                if fresh:
                    queue.append((fk.child, fresh, child_change))

    def _referencing(
        self, fk: ForeignKey, batch: list[dict[str, Any]]
    ) -> list[dict[str, Any]]:
        if fk.child.startswith("(another schema)"):
            raise HiddenEffectsError(
                tool="the SQL battery",
                table=fk.parent,
                found=[
                    (
                        fk.child,
                        "a foreign key from another schema",
                        "keep the referencing table in the current schema",
                    )
                ],
                when="before it ran",
            )
        if fk.child not in self.tables:
            self.tables[fk.child] = _Rows(self.db, self.cur, fk.child)
        values = {tuple(r[c] for c in fk.parent_columns) for r in batch}
        wanted = sorted((v for v in values if None not in v), key=repr)
        return (
            self.tables[fk.child].matching(fk.child_columns, wanted) if wanted else []
        )

    def _add(
        self, table: str, rows: list[dict[str, Any]], change: Change
    ) -> list[dict[str, Any]]:
        t = self.tables[table]
        fresh = []
        for row in rows:
            key = t.key_of(row)
            old = self.modes.get((table, key), "unseen")
            merged = _broader(old, change)
            if old != "unseen" and merged == old:
                continue
            self.modes[(table, key)] = merged
            self.rows.setdefault(table, {})[key] = row
            fresh.append(row)
        return fresh

    def refuse_hidden(self, tool: str, table: str, when: str) -> None:
        found = [
            (name, what, fix)
            for name in self.tables
            for what, fix in hidden_effects(self.db.dialect, self.cur, name)
        ]
        if found:
            raise HiddenEffectsError(tool=tool, table=table, found=found, when=when)

    def images_after(self, main: str) -> list[dict[str, Any]]:
        """The other tables' rows that the statement changed, before and after."""
        images = []
        for name, rows in self.rows.items():
            if name == main:
                continue
            t = self.tables[name]
            now = {key: t.by_key(key) for key in rows}
            before = {k: r for k, r in rows.items() if now[k] != r}
            after = {k: now[k] for k in before if now[k] is not None}
            if before:
                images.append({"table": name, "before": before, "after": after})
        return images


def _images(
    rows: _Rows,
    before: list[dict[str, Any]],
    after: list[dict[str, Any]],
    cascaded: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    images: dict[str, Any] = {
        "database": rows.db.name,
        "table": rows.table,
        "before": {rows.key_of(r): r for r in before},
        "after": {rows.key_of(r): r for r in after},
    }
    if cascaded:
        images["cascaded"] = cascaded
    return images


def _parents_first(
    db: SqlDatabase,
    cur: Any,
    tables: dict[str, _Rows],
    rows: list[tuple[str, dict[str, Any]]],
) -> list[tuple[str, dict[str, Any]]]:
    """`rows` ordered so that a row comes after the rows it references."""
    fks = {t: references_from(db.dialect, cur, t) for t in {t for t, _ in rows}}
    by_value: dict[tuple[str, tuple[str, ...], tuple[Any, ...]], int] = {}
    for fk_list in fks.values():
        for fk in fk_list:
            for i, (t, r) in enumerate(rows):
                if t == fk.parent:
                    by_value[
                        (t, fk.parent_columns, tuple(r[c] for c in fk.parent_columns))
                    ] = i
    needs: list[set[int]] = []
    for i, (t, r) in enumerate(rows):
        refs = {
            by_value.get(
                (
                    fk.parent,
                    fk.parent_columns,
                    tuple(r.get(c) for c in fk.child_columns),
                ),
                i,
            )
            for fk in fks[t]
        }
        needs.append(refs - {i})
    order: list[int] = []
    placed: set[int] = set()
    while len(order) < len(rows):
        ready = [i for i in range(len(rows)) if i not in placed and needs[i] <= placed]
        if not ready:  # a cycle: keep the rest in their recorded order
            ready = [i for i in range(len(rows)) if i not in placed]
        for i in ready:
            placed.add(i)
            order.append(i)
    return [rows[i] for i in order]


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
        main = _Rows(db, cur, images["table"])
        walk = _Cascade(db, cur, main)
        for part in parts[1:]:
            walk.tables.setdefault(part["table"], _Rows(db, cur, part["table"]))
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
        for table, row in reversed(_parents_first(db, cur, walk.tables, removals)):
            walk.tables[table].delete(walk.tables[table].key_of(row))
        puts = [(p["table"], row) for p in parts for row in p["before"].values()]
        for table, row in _parents_first(db, cur, walk.tables, puts):
            walk.tables[table].put(row)
    touched = sum(len(set(p["before"]) | set(p["after"])) for p in parts)
    others = (
        f" (and rows of {', '.join(p['table'] for p in parts[1:])})"
        if parts[1:]
        else ""
    )
    return f"restored {touched} row(s) of {images['table']}{others}"


def _refuse_drift(db: SqlDatabase, rows: _Rows, part: dict[str, Any]) -> None:
    touched = sorted(set(part["before"]) | set(part["after"]))
    drifted = [k for k in touched if rows.by_key(k) != part["after"].get(k)]
    if drifted and db.on_drift == "fail":
        raise RowDriftError(table=rows.table, keys=[json.loads(k) for k in drifted])


def _refuse_referenced(
    db: SqlDatabase,
    cur: Any,
    tables: dict[str, _Rows],
    removals: list[tuple[str, dict[str, Any]]],
) -> None:
    """Refuse to remove rows that rows outside the images now reference."""
    doomed = {(t, tables[t].key_of(r)) for t, r in removals}
    for table in {t for t, _ in removals}:
        walk = _Cascade(db, cur, tables[table])
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
                keys=[json.loads(k) for n, k in extra if n == name],
                why="now reference rows the agent inserted, and removing those would change them",
            )


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
            _Cascade(db, cur, t).refuse_hidden("insert_rows", table, "before it ran")
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
            walk = _Cascade(db, cur, t)
            walk.walk(table, before, frozenset(values))
            walk.refuse_hidden("update_rows", table, "before it ran")
            sets = ", ".join(f"{_quote(c)} = {db.mark}" for c in values)
            cur.execute(
                f"UPDATE {t.q} SET {sets} WHERE {clause}", [*values.values(), *params]
            )
            after = [t.by_key(t.key_of(r)) for r in before]
            rows_after = [r for r in after if r is not None]
            return f"updated {len(before)} row(s) of {table}", _images(
                t, before, rows_after, walk.images_after(table)
            )

    def delete_rows(table: str, where: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        """Delete the rows of `table` matching `where` (column equalities).

        Rows of other tables that foreign keys delete or change with them
        (ON DELETE CASCADE, SET NULL, SET DEFAULT) are imaged too.
        """
        with db.transaction() as cur:
            t = _Rows(db, cur, table)
            clause, params = t.where(where)
            before = t.fetch(clause, params)
            walk = _Cascade(db, cur, t)
            walk.walk(table, before, None)
            walk.refuse_hidden("delete_rows", table, "before it ran")
            cur.execute(f"DELETE FROM {t.q} WHERE {clause}", params)
            cascaded = walk.images_after(table)
            note = (
                f" (and {sum(len(c['before']) for c in cascaded)} referencing row(s))"
                if cascaded
                else ""
            )
            return f"deleted {len(before)} row(s) of {table}{note}", _images(
                t, before, [], cascaded
            )

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
