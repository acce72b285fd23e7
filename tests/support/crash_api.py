"""A graph that pays through a deduplicating API, run in a child process.

`python -m tests.support.crash_api DB API MODE`: the `charge` tool sends its effect's
idempotency key to a fake payments API (a real SQLite table with a UNIQUE
key), then, when `CRASH_AFTER_API=1`, SIGKILLs its own process before the
outcome is recorded. MODE is "observe" (the tool declares an observation that
asks the API whether the key was charged) or "plain".
"""

from __future__ import annotations

import operator
import os
import signal
import sqlite3
import sys
from typing import Annotated, Any, TypedDict

from langgraph.graph import END, START, StateGraph

from langgraph_rollback import (
    BaseRollbackSaver,
    Effect,
    SqliteRollbackSaver,
    ToolRegistry,
    current_effect,
    reversible,
)


class State(TypedDict, total=False):
    receipts: Annotated[list[Any], operator.add]


class PaymentsAPI:
    """A payments service that deduplicates by idempotency key."""

    def __init__(self, path: str) -> None:
        self.path = path
        with sqlite3.connect(path) as db:
            db.execute(
                "CREATE TABLE IF NOT EXISTS payments (id INTEGER PRIMARY KEY, "
                "idempotency_key TEXT NOT NULL UNIQUE, customer TEXT, cents INTEGER, "
                "refunded INTEGER NOT NULL DEFAULT 0)"
            )
            db.execute(
                "CREATE TABLE IF NOT EXISTS refunds (idempotency_key TEXT PRIMARY KEY)"
            )

    def charge(self, key: str, customer: str, cents: int) -> int:
        with sqlite3.connect(self.path) as db:
            db.execute(
                "INSERT INTO payments (idempotency_key, customer, cents) VALUES (?, ?, ?) "
                "ON CONFLICT (idempotency_key) DO NOTHING",
                (key, customer, cents),
            )
            row = db.execute(
                "SELECT id FROM payments WHERE idempotency_key = ?", (key,)
            ).fetchone()
            return int(row[0])

    def refund(self, key: str, payment_id: int) -> None:
        with sqlite3.connect(self.path) as db:
            inserted = db.execute(
                "INSERT INTO refunds VALUES (?) ON CONFLICT DO NOTHING", (key,)
            ).rowcount
            if inserted:
                db.execute(
                    "UPDATE payments SET refunded = refunded + 1 WHERE id = ?",
                    (payment_id,),
                )

    def charged(self, key: str) -> int:
        with sqlite3.connect(self.path) as db:
            return int(
                db.execute(
                    "SELECT count(*) FROM payments WHERE idempotency_key = ?", (key,)
                ).fetchone()[0]
            )

    def rows(self) -> list[tuple[Any, ...]]:
        with sqlite3.connect(self.path) as db:
            return db.execute(
                "SELECT customer, cents, refunded FROM payments ORDER BY id"
            ).fetchall()


def build(saver: BaseRollbackSaver, api: PaymentsAPI, mode: str) -> Any:
    registry = saver.registry

    def refund(effect: Effect) -> str:
        # The inverse has its own key, so a retried refund cannot refund twice.
        api.refund(effect.undo_idempotency_key, effect.result)
        return f"refunded payment #{effect.result}"

    def observe(customer: str, cents: int) -> int:
        effect = current_effect()
        assert effect is not None
        return api.charged(effect.idempotency_key)

    @reversible(
        undo=refund,
        kind="compensable",
        observe=observe if mode == "observe" else None,
        registry=registry,
    )
    def charge(customer: str, cents: int) -> int:
        effect = current_effect()
        assert effect is not None
        payment = api.charge(effect.idempotency_key, customer, cents)
        if os.environ.get("CRASH_AFTER_API") == "1":
            os.kill(os.getpid(), signal.SIGKILL)
        return payment

    builder = StateGraph(State)
    builder.add_node("pay", lambda state: {"receipts": [charge("acme", 4200)]})
    builder.add_edge(START, "pay")
    builder.add_edge("pay", END)
    return builder.compile(checkpointer=saver)


def main() -> None:
    db, api_path, mode = sys.argv[1], sys.argv[2], sys.argv[3]
    with SqliteRollbackSaver.from_conn_string(db, registry=ToolRegistry()) as saver:
        graph = build(saver, PaymentsAPI(api_path), mode)
        graph.invoke({"receipts": []}, {"configurable": {"thread_id": "pay"}})


if __name__ == "__main__":
    main()
