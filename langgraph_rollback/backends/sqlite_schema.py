"""SQL text of the SQLite ledger: its migrations and statements.

The ledger lives in the same database file as LangGraph's `checkpoints` and
`writes` tables, in tables prefixed `lgrb_` so they never collide. There is
deliberately no foreign key to `checkpoints`: with `durability="async"` an
effect is recorded before its checkpoint is written, and with `"exit"` that
checkpoint never is.

`MIGRATIONS` is append-only: its index is the schema version, recorded in
`lgrb_migrations`. Never edit a released entry; add a new one.
"""

from __future__ import annotations

from langgraph_rollback._ledger import COLUMNS

__all__ = [
    "INSERT_INTENT",
    "MIGRATIONS",
    "SELECT_BY_ID",
    "SELECT_COLUMNS",
    "VERSION_TABLE",
]

VERSION_TABLE = """
CREATE TABLE IF NOT EXISTS lgrb_migrations (
    v INTEGER PRIMARY KEY,
    applied_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
"""

MIGRATIONS: list[str] = [
    # v0: the effects ledger.
    """
    CREATE TABLE IF NOT EXISTS lgrb_effects (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        effect_id TEXT NOT NULL UNIQUE,
        thread_id TEXT NOT NULL,
        checkpoint_ns TEXT NOT NULL DEFAULT '',
        task_ns TEXT NOT NULL,
        checkpoint_id TEXT NOT NULL,
        root_checkpoint_id TEXT NOT NULL,
        base_checkpoint_id TEXT,
        task_id TEXT NOT NULL,
        call_key TEXT NOT NULL,
        tool_call_id TEXT,
        ordinal INTEGER,
        tool TEXT NOT NULL,
        kind TEXT NOT NULL,
        status TEXT NOT NULL,
        attempt INTEGER NOT NULL DEFAULT 1,
        idempotency_key TEXT NOT NULL,
        run_id TEXT,
        intent_type TEXT,
        intent BLOB,
        outcome_type TEXT,
        outcome BLOB,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        completed_at TEXT
    );
    CREATE INDEX IF NOT EXISTS lgrb_effects_thread_seq
        ON lgrb_effects (thread_id, seq);
    CREATE INDEX IF NOT EXISTS lgrb_effects_thread_root
        ON lgrb_effects (thread_id, root_checkpoint_id);
    """,
]

SELECT_COLUMNS = ", ".join(COLUMNS)

_INSERT_COLUMNS = [c for c in COLUMNS if c not in ("seq", "base_checkpoint_id")]

INSERT_INTENT = f"""
INSERT INTO lgrb_effects ({", ".join(_INSERT_COLUMNS)}, base_checkpoint_id)
VALUES ({", ".join("?" for _ in _INSERT_COLUMNS)}, (
    SELECT checkpoint_id FROM checkpoints
    WHERE thread_id = ? AND checkpoint_ns = ''
    ORDER BY checkpoint_id DESC LIMIT 1
))
ON CONFLICT (effect_id) DO NOTHING
RETURNING seq, base_checkpoint_id
"""
"""Insert an intent; the newest persisted root checkpoint of the thread is
read in the same statement. Parameters: `_INSERT_COLUMNS` values, then the
thread id again."""

INSERT_PARAM_COLUMNS: tuple[str, ...] = tuple(_INSERT_COLUMNS)

SELECT_BY_ID = f"SELECT {SELECT_COLUMNS} FROM lgrb_effects WHERE effect_id = ?"
