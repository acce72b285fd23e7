"""Set-up of large threads: checkpoint chains and bulk ledger rows.

Checkpoints are written through a saver's own `put`/`put_writes` (on a
set-up connection with durability relaxed: SQLite `synchronous=OFF`,
PostgreSQL `synchronous_commit=off`), one linear chain per thread, each
checkpoint carrying the agent loop's state (two messages and a step
counter) and one pending write. Ledger rows are inserted with one SQL
statement per row in a single transaction, with the columns the recording
flow writes for an applied effect; the measured operations then go through
the public API (`plan_rollback`, `rollback`, `list_effects`, `get_tuple`,
`list`).
"""

from __future__ import annotations

import contextlib
import sqlite3
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from langchain_core.messages import AIMessage, HumanMessage
from langgraph.checkpoint.base import Checkpoint, empty_checkpoint
from langgraph.checkpoint.base.id import uuid6
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer

from benchmarks.agent import CONTENT
from langgraph_rollback import SqliteRollbackSaver, ToolRegistry
from langgraph_rollback.core.codec import encode_payload
from langgraph_rollback.core.ledger import COLUMNS

TOOL = "write_file"


@dataclass(frozen=True)
class Step:
    """One checkpoint to `put`, with its parent config and one pending write."""

    config: dict[str, Any]
    checkpoint: Checkpoint
    metadata: dict[str, Any]
    versions: dict[str, Any]
    write: tuple[str, Any]
    task_id: str


def chain(thread_id: str, count: int) -> Iterator[Step]:
    """A linear chain of `count` root checkpoints, oldest first."""
    parent: str | None = None
    for step in range(count):
        checkpoint = empty_checkpoint()
        checkpoint["id"] = str(uuid6(clock_seq=step))
        version = f"{step + 1:032}.0"
        checkpoint["channel_values"] = {
            "messages": [
                HumanMessage("start", id="human-0"),
                AIMessage(
                    "",
                    id=f"ai-{step}",
                    tool_calls=[
                        {
                            "name": TOOL,
                            "args": {"path": f"file-{step}.txt", "content": CONTENT},
                            "id": f"call-{step}",
                        }
                    ],
                ),
            ],
            "step": step,
        }
        checkpoint["channel_versions"] = {"messages": version, "step": version}
        config: dict[str, Any] = {
            "configurable": {"thread_id": thread_id, "checkpoint_ns": ""}
        }
        if parent is not None:
            config["configurable"]["checkpoint_id"] = parent
        yield Step(
            config=config,
            checkpoint=checkpoint,
            metadata={"source": "loop", "step": step, "parents": {}},
            versions=dict(checkpoint["channel_versions"]),
            write=("messages", [HumanMessage(f"tool result {step}", id=f"t-{step}")]),
            task_id=str(uuid.uuid4()),
        )
        parent = checkpoint["id"]


def _write_config(thread_id: str, checkpoint_id: str) -> dict[str, Any]:
    return {
        "configurable": {
            "thread_id": thread_id,
            "checkpoint_ns": "",
            "checkpoint_id": checkpoint_id,
        }
    }


def fill_sync(
    saver: Any, thread_id: str, count: int, steps: list[Step] | None = None
) -> list[str]:
    """Put a chain (`steps`, or a new one) through a sync saver; return its
    checkpoint ids, oldest first."""
    ids = []
    for step in steps if steps is not None else chain(thread_id, count):
        saver.put(step.config, step.checkpoint, step.metadata, step.versions)
        cid = step.checkpoint["id"]
        saver.put_writes(_write_config(thread_id, cid), [step.write], step.task_id)
        ids.append(cid)
    return ids


def sqlite_thread(path: str, thread_id: str, count: int) -> list[str]:
    """Create (or extend) `path` with a chain; ledger tables included."""
    with contextlib.closing(sqlite3.connect(path, check_same_thread=False)) as conn:
        saver = SqliteRollbackSaver(conn, registry=ToolRegistry())
        saver.setup()
        conn.execute("PRAGMA synchronous=OFF")
        return fill_sync(saver, thread_id, count)


def pg_thread(url: str, thread_id: str, count: int) -> list[str]:
    """Create a chain in a PostgreSQL database; ledger tables included."""
    from psycopg import Connection
    from psycopg.rows import dict_row

    from langgraph_rollback.postgres import PostgresRollbackSaver

    with Connection.connect(
        url, autocommit=True, prepare_threshold=0, row_factory=dict_row
    ) as conn:
        saver = PostgresRollbackSaver(conn, registry=ToolRegistry())
        saver.setup()
        conn.execute("SET synchronous_commit TO off")
        return fill_sync(saver, thread_id, count)


_INSERT = (
    f"INSERT INTO lgrb_effects ({', '.join(c for c in COLUMNS if c != 'seq')}) "
    f"VALUES ({', '.join('?' for c in COLUMNS if c != 'seq')})"
)


def insert_effects(path: str, thread_id: str, anchors: list[str]) -> None:
    """Insert one applied `write_file` effect per anchor checkpoint, in order.

    Each effect's task started from its anchor (its `checkpoint_id`,
    `root_checkpoint_id` and `base_checkpoint_id`), as a `ToolNode` call
    recorded under durability "sync" is stored.
    """
    serde = JsonPlusSerializer()
    intent = encode_payload(
        serde,
        {"args": {"path": "file.txt", "content": CONTENT}, "before": None},
        tool=TOOL,
    )
    outcome = encode_payload(
        serde,
        {"result": "wrote 200 bytes to file.txt", "after": None, "observed": False},
        tool=TOOL,
    )
    stamp = datetime.now(UTC).isoformat()
    rows = []
    for i, anchor in enumerate(anchors):
        task_id = str(uuid.uuid4())
        effect_id = str(uuid.uuid4())
        values = {
            "effect_id": effect_id,
            "thread_id": thread_id,
            "checkpoint_ns": "",
            "task_ns": f"tools:{task_id}",
            "checkpoint_id": anchor,
            "root_checkpoint_id": anchor,
            "base_checkpoint_id": anchor,
            "task_id": task_id,
            "call_key": f"call:call-{i}",
            "tool_call_id": f"call-{i}",
            "ordinal": None,
            "tool": TOOL,
            "kind": "reversible",
            "status": "applied",
            "attempt": 1,
            "idempotency_key": f"lgrb-{effect_id}",
            "run_id": None,
            "intent_type": intent[0],
            "intent": intent[1],
            "outcome_type": outcome[0],
            "outcome": outcome[1],
            "created_at": stamp,
            "updated_at": stamp,
            "completed_at": stamp,
            "undo_type": None,
            "undo": None,
            "undo_attempts": 0,
            "rollback_id": None,
            "compensated_at": None,
            "owner": None,
        }
        rows.append(tuple(values[c] for c in COLUMNS if c != "seq"))
    with contextlib.closing(sqlite3.connect(path)) as conn:
        conn.execute("PRAGMA synchronous=OFF")
        with conn:
            conn.executemany(_INSERT, rows)


def spread(checkpoints: list[str], count: int) -> list[str]:
    """`count` anchors spread evenly over `checkpoints`, oldest first."""
    return [checkpoints[i * len(checkpoints) // count] for i in range(count)]
