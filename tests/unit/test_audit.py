"""The audit trail's core: who decided, and one entry per decision."""

from __future__ import annotations

from typing import Any

import pytest

from langgraph_rollback._errors import InvalidConfigError
from langgraph_rollback._models import AuditAction
from langgraph_rollback.core.audit import (
    attributed,
    audit_flow,
    check_by,
    claimed,
    decider,
    entry_from_row,
    keep,
    reason_of,
)
from langgraph_rollback.core.ops import AuditRow, ReadAudit, WriteAudit
from tests.unit.script import Script

SRV = {"langgraph_auth_user_id": "srv"}


@pytest.mark.parametrize(
    ("answer", "configurable", "who", "details"),
    [
        ({"approve": True, "by": " ann "}, SRV, "srv", {"claimed_by": "ann"}),
        ({"approve": True, "by": "srv"}, SRV, "srv", {}),
        ({"approve": True, "by": ""}, SRV, "srv", {}),
        (True, SRV, "srv", {}),
        ({"by": " ann "}, {"langgraph_auth_user_id": ""}, "ann", {}),
        (True, {"langgraph_auth_user_id": ""}, "unknown", {}),
        ({"by": 3}, None, "unknown", {}),
        (None, {}, "unknown", {}),
    ],
)
def test_the_decider_is_the_servers_user_then_the_answers_by(
    answer: Any, configurable: Any, who: str, details: dict[str, str]
) -> None:
    assert decider(answer, configurable) == who
    assert claimed(answer, configurable) == details


@pytest.mark.parametrize(
    ("by", "configurable", "kept"),
    [
        ("ann", SRV, ("srv", "ann")),
        ("srv", SRV, ("srv", None)),
        (None, SRV, ("srv", None)),
        (" ann ", {"langgraph_auth_user_id": ""}, ("ann", None)),
        ("ann", None, ("ann", None)),
        (None, {}, (None, None)),
    ],
)
def test_a_callers_by_follows_the_servers_user(
    by: str | None, configurable: Any, kept: tuple[str | None, str | None]
) -> None:
    assert attributed(by, configurable) == kept


@pytest.mark.parametrize(
    ("answer", "reason"),
    [({"reason": " late "}, "late"), ({"reason": ""}, None), ("yes", None)],
)
def test_a_reason_comes_from_the_answer(answer: Any, reason: str | None) -> None:
    assert reason_of(answer) == reason


@pytest.mark.parametrize(("by", "reason"), [("", None), (None, 7), (" ", "x")])
def test_by_and_reason_must_be_text(by: Any, reason: Any) -> None:
    with pytest.raises(InvalidConfigError, match="is not text"):
        check_by(by, reason)
    check_by("ann", "why")
    check_by(None, None)


def test_one_decision_has_one_id_and_round_trips() -> None:
    def kept(key: str) -> AuditRow:
        flow = Script(
            keep("t", AuditAction.FORCE, key=key, by="ann", effect_ids=["e1"])
        )
        row: AuditRow = flow.reply(WriteAudit, None).row
        assert flow.returns().id == row.audit_id
        return row

    first, again, other = kept("rb-1"), kept("rb-1"), kept("rb-2")
    assert first.audit_id == again.audit_id != other.audit_id
    entry = entry_from_row(first)
    assert (entry.thread_id, entry.by, entry.effect_ids) == ("t", "ann", ["e1"])
    assert entry.action is AuditAction.FORCE


def test_the_trail_is_read_newest_first_as_the_store_answers() -> None:
    rows = []
    for key in ("a", "b"):
        flow = Script(keep("t", AuditAction.SKIP, key=key, by="ann"))
        rows.append(flow.reply(WriteAudit, None).row)
    flow = Script(audit_flow("t", limit=2))
    flow.reply(ReadAudit, rows[::-1], thread_id="t", limit=2)
    assert [e.id for e in flow.returns()] == [r.audit_id for r in rows[::-1]]
