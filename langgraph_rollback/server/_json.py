"""The routes' JSON: a report, a plan and an effect as plain data."""

from __future__ import annotations

from typing import Any

from pydantic_core import to_jsonable_python

from langgraph_rollback.core.plan import RollbackPlan
from langgraph_rollback.core.report import RollbackReport

__all__ = ["effect_json", "plan_json", "report_json"]


def _json(value: Any) -> Any:
    return to_jsonable_python(value, fallback=repr)


def effect_json(effect: Any) -> Any:
    data = _json(effect)
    data["node"] = effect.node
    return data


def report_json(report: RollbackReport) -> dict[str, Any]:
    """A rollback report as the rollback route answers it."""

    def step(s: Any, key: str) -> dict[str, Any]:
        return {
            "effect_id": s.effect.id,
            "seq": s.effect.seq,
            "tool": s.effect.tool,
            key: getattr(s, key),
        }

    return {
        "rollback_id": report.rollback_id,
        "thread_id": report.thread_id,
        "status": report.status,
        "ok": report.ok,
        "target_checkpoint_id": report.target_checkpoint_id,
        "head_checkpoint_id": report.head_checkpoint_id,
        "restored_checkpoint_id": report.restored_checkpoint_id,
        "message": report.message,
        "undone": [step(s, "description") for s in report.undone],
        "not_undone": [step(s, "reason") for s in report.skipped],
        "conflicts": [step(s, "reason") for s in report.conflicts],
        "failed": [step(s, "error") for s in report.failures],
        "already_undone": [e.id for e in report.already_compensated],
        "orphans": [e.id for e in report.orphans],
        "text": str(report),
    }


def plan_json(plan: RollbackPlan) -> dict[str, Any]:
    """A rollback plan as the plan route answers it."""
    return {
        "thread_id": plan.thread_id,
        "target_checkpoint_id": plan.target_checkpoint_id,
        "head_checkpoint_id": plan.head_checkpoint_id,
        "steps": [
            {
                "effect_id": s.effect.id,
                "seq": s.effect.seq,
                "tool": s.effect.tool,
                "decision": s.decision.value,
                "reason": s.reason,
            }
            for s in plan.steps
        ],
        "orphans": [e.id for e in plan.orphans],
        "text": str(plan),
    }
