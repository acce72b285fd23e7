"""Which ledger rows a read selects: `EffectQuery.matches`, the SQL `WHERE`
clause that must agree with it, and the queries a caller's config names."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from typing import Any

import pytest

from langgraph_rollback._errors import InvalidConfigError
from langgraph_rollback._models import EffectStatus
from langgraph_rollback.core.config import (
    checkpoint_config,
    effect_id_arg,
    effect_query,
    thread_id_of,
)
from langgraph_rollback.core.ledger import COLUMNS
from langgraph_rollback.core.query import EffectQuery, may_be_earlier, rerun_candidate
from langgraph_rollback.savers.sql import where_clause
from langgraph_rollback.savers.sqlite_sql import MIGRATIONS
from tests.unit.build import row

ROWS = [
    row("r1", root="c1", base_checkpoint_id="c0", seq=1),
    row(
        "r2",
        root="c1",
        checkpoint_ns="sub:x",
        checkpoint_id="s1",
        base_checkpoint_id="c1",
        status="pending",
        seq=2,
    ),
    row("r3", root="c2", status="compensated", tool="delete", seq=3),
    row("r4", root="c3", base_checkpoint_id="c2", seq=4, tool_call_id="call_1"),
    row("r5", root="c1", base_checkpoint_id="c0", thread_id="u", seq=5),
    row("r6", root="c9", status="failed", seq=6),
    row("r7", root="c4", base_checkpoint_id="c4", thread_id="v", seq=7),
]

QUERIES: list[tuple[EffectQuery, set[str]]] = [
    (EffectQuery("t"), {"r1", "r2", "r3", "r4", "r6"}),
    (EffectQuery("u"), {"r5"}),
    (EffectQuery("t", effect_id="r3"), {"r3"}),
    (EffectQuery("t", effect_id="r5"), set()),
    (EffectQuery("t", checkpoint_id="c1"), {"r1", "r2"}),
    (EffectQuery("t", checkpoint_ns="", checkpoint_id="c1"), {"r1", "r2"}),
    (EffectQuery("t", checkpoint_ns="sub:x", checkpoint_id="s1"), {"r2"}),
    (EffectQuery("t", checkpoint_ns="sub:x", checkpoint_id="c1"), set()),
    (EffectQuery("t", statuses=("applied", "pending")), {"r1", "r2", "r4"}),
    (EffectQuery("t", tool="delete"), {"r3"}),
    (EffectQuery("t", tool_call_id="call_1"), {"r4"}),
    (EffectQuery("t", tool_call_id="call_2"), set()),
    (EffectQuery("t", call_key="call:r4"), {"r4"}),
    (EffectQuery("t", call_key="call:r5"), set()),
    (EffectQuery("t", before_seq=3), {"r1", "r2"}),
    # Root checkpoint not the base (r3 and r6 have none), or in a subgraph (r2,
    # whose root checkpoint was its base).
    (EffectQuery("t", rerun_candidates=True), {"r1", "r2", "r3", "r4", "r6"}),
    (EffectQuery("t", checkpoint_id="c1", rerun_candidates=True), {"r1", "r2"}),
    (EffectQuery("t", anchors=("c1",), rerun_candidates=True), {"r1", "r2"}),
    (EffectQuery("v"), {"r7"}),
    (EffectQuery("v", rerun_candidates=True), set()),  # its root was its base
    (EffectQuery("t", anchors=("c2",)), {"r3", "r4"}),
    (EffectQuery("t", anchors=("c2",), unanchored=True), {"r3", "r4", "r6"}),
    (EffectQuery("t", anchors=()), set()),
    (EffectQuery("t", anchors=(), unanchored=True), {"r3", "r6"}),
    (EffectQuery("t", anchors=("c0",)), {"r1"}),
    (EffectQuery("t", anchors=("c1", "c2"), statuses=("applied",)), {"r1", "r4"}),
    (EffectQuery("t", anchors=("c1",), tool="write", before_seq=2), {"r1"}),
]


@pytest.fixture(scope="module")
def ledger() -> Iterator[sqlite3.Connection]:
    """An in-memory `lgrb_effects` table as the first migration makes it."""
    conn = sqlite3.connect(":memory:")
    # The migration indexes LangGraph's checkpoints table too.
    conn.execute(
        "CREATE TABLE checkpoints (thread_id TEXT, checkpoint_ns TEXT, "
        "checkpoint_id TEXT, parent_checkpoint_id TEXT)"
    )
    for migration in MIGRATIONS:
        conn.executescript(migration)
    marks = ", ".join("?" for _ in COLUMNS)
    conn.executemany(
        f"INSERT INTO lgrb_effects ({', '.join(COLUMNS)}) VALUES ({marks})",
        [tuple(getattr(r, c) for c in COLUMNS) for r in ROWS],
    )
    yield conn
    conn.close()


@pytest.mark.parametrize(("query", "expected"), QUERIES)
def test_where_clause_selects_exactly_the_rows_matches_accepts(
    ledger: sqlite3.Connection, query: EffectQuery, expected: set[str]
) -> None:
    where, params = where_clause(query)
    selected = {
        effect_id
        for (effect_id,) in ledger.execute(
            f"SELECT effect_id FROM lgrb_effects WHERE {where}", params
        )
    }
    assert {r.effect_id for r in ROWS if query.matches(r)} == expected
    assert selected == expected


def test_limit_is_left_to_the_store() -> None:
    query = EffectQuery("t", limit=1)
    assert [r.effect_id for r in ROWS if query.matches(r)] == [
        "r1",
        "r2",
        "r3",
        "r4",
        "r6",
    ]


# --- what a config names ---------------------------------------------------------


def test_thread_id_is_read_from_the_config() -> None:
    assert thread_id_of({"configurable": {"thread_id": 7}}) == "7"


@pytest.mark.parametrize(
    "config", [None, {}, {"configurable": None}, {"configurable": {}}]
)
def test_config_without_a_thread_is_refused(config: Any) -> None:
    with pytest.raises(InvalidConfigError, match="names no thread"):
        thread_id_of(config)


def query_for(config: Any = None, **filters: Any) -> EffectQuery:
    args = {"status": None, "tool": None, "before": None, "limit": None} | filters
    named: Any = config or {"configurable": {"thread_id": "t"}}
    return effect_query(named, **args)


def test_effect_query_of_a_thread_reads_every_effect() -> None:
    assert query_for() == EffectQuery("t", checkpoint_ns="")


def test_effect_query_carries_the_config_s_checkpoint_and_the_filters() -> None:
    config = {
        "configurable": {"thread_id": "t", "checkpoint_ns": "sub", "checkpoint_id": "c"}
    }
    query = query_for(config, tool="write", before=9, limit=0)
    assert query == EffectQuery(
        "t", checkpoint_ns="sub", checkpoint_id="c", tool="write", before_seq=9, limit=0
    )


@pytest.mark.parametrize(
    ("status", "statuses"),
    [
        ("applied", ("applied",)),
        (EffectStatus.PENDING, ("pending",)),
        (["failed", EffectStatus.BLOCKED], ("failed", "blocked")),
    ],
)
def test_effect_query_takes_one_status_or_several(
    status: Any, statuses: tuple[str, ...]
) -> None:
    assert query_for(status=status).statuses == statuses


def test_effect_query_refuses_an_unknown_status() -> None:
    with pytest.raises(InvalidConfigError, match="Unknown effect status 'done'"):
        query_for(status=["applied", "done"])


@pytest.mark.parametrize("limit", [-1, 2.5, "3"])
def test_effect_query_refuses_a_limit_that_is_not_a_count(limit: Any) -> None:
    with pytest.raises(InvalidConfigError, match="limit must be a non-negative int"):
        query_for(limit=limit)


def test_effect_query_refuses_true_as_a_limit() -> None:
    with pytest.raises(InvalidConfigError) as caught:
        query_for(limit=True)
    assert str(caught.value) == (
        "limit must be a non-negative int, got True. Fix: pass e.g. limit=50, "
        "or leave it out for every effect."
    )


@pytest.mark.parametrize("before", [True, 2.0, "9"])
def test_effect_query_refuses_a_before_that_is_not_a_seq(before: Any) -> None:
    with pytest.raises(InvalidConfigError) as caught:
        query_for(before=before)
    assert str(caught.value) == (
        f"before must be an effect's seq (an int), got {before!r}. Fix: pass the "
        "seq of the oldest effect of the previous page, e.g. before=page[-1].seq."
    )


@pytest.mark.parametrize(
    ("filters", "says"),
    [
        ({"limit": 2**63}, "limit must be at most 2\\*\\*63-1"),
        ({"before": 2**63}, "before must be an effect's seq \\(a 64-bit integer\\)"),
        ({"before": -(2**63) - 1}, "before must be an effect's seq \\(a 64-bit"),
    ],
)
def test_effect_query_refuses_a_limit_or_before_past_64_bits(
    filters: dict[str, int], says: str
) -> None:
    with pytest.raises(InvalidConfigError, match=says):
        query_for(**filters)


def test_effect_query_takes_the_64_bit_extremes() -> None:
    query = query_for(limit=2**63 - 1, before=-(2**63))
    assert (query.limit, query.before_seq) == (2**63 - 1, -(2**63))


@pytest.mark.parametrize("tool", ["", 3, ["write"]])
def test_effect_query_refuses_a_tool_that_is_not_a_name(tool: Any) -> None:
    with pytest.raises(InvalidConfigError) as caught:
        query_for(tool=tool)
    assert str(caught.value).startswith(
        f"tool must be a tool name (a non-empty str), got {tool!r}. Fix:"
    )


def test_effect_id_argument_is_returned_as_given() -> None:
    assert effect_id_arg("e1") == "e1"


@pytest.mark.parametrize("effect_id", ["", None, 7, b"e1"])
def test_effect_id_argument_that_is_not_an_id_is_refused(effect_id: Any) -> None:
    with pytest.raises(InvalidConfigError) as caught:
        effect_id_arg(effect_id)
    assert str(caught.value) == (
        f"effect_id must be an effect's id (a non-empty str), got {effect_id!r}. "
        "Fix: pass Effect.id, e.g. from saver.list_effects(config)."
    )


def test_checkpoint_config_names_a_root_checkpoint() -> None:
    assert checkpoint_config("t", "c1") == {
        "configurable": {"thread_id": "t", "checkpoint_ns": "", "checkpoint_id": "c1"}
    }


def test_a_rerun_candidate_is_a_subgraph_s_row_or_one_whose_root_may_be_unstored() -> (
    None
):
    call = row("new", root="c3", base_checkpoint_id="c3")
    stored_root = row("a", root="c1", base_checkpoint_id="c1")
    in_subgraph = row("b", root="c1", base_checkpoint_id="c1", checkpoint_ns="s:1")
    unstored = row("c", root="c2", base_checkpoint_id="c1")
    unbased = row("d", root="c2", base_checkpoint_id=None)
    assert not may_be_earlier(stored_root, call)  # found under its own root only
    assert may_be_earlier(in_subgraph, call)
    assert may_be_earlier(unstored, call) and may_be_earlier(unbased, call)
    assert not may_be_earlier(unstored, unstored)  # no earlier record of itself
    rows = (stored_root, in_subgraph, unstored, unbased)
    assert [rerun_candidate(r) for r in rows] == [False, True, True, True]
