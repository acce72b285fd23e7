"""The public surface is pinned: adding or removing a name is a decision."""

from __future__ import annotations

import langgraph_rollback

EXPECTED = [
    "AmbiguousTargetError",
    "AsyncSqliteRollbackSaver",
    "AuditAction",
    "AuditEntry",
    "BaseRollbackSaver",
    "CheckpointNotFoundError",
    "Decision",
    "DeclarationError",
    "DuplicateToolError",
    "DurabilityError",
    "Effect",
    "EffectInFlightError",
    "EffectNotFoundError",
    "EffectOutcomeUnknownError",
    "EffectResultUnknownError",
    "EffectStateError",
    "EffectStatus",
    "FailedStep",
    "InMemoryRollbackSaver",
    "InvalidConfigError",
    "InvalidTargetError",
    "IrreversibleToolBlockedError",
    "LedgerSchemaError",
    "LedgerUpgradeError",
    "NotAnAncestorError",
    "ObservationError",
    "PlannedStep",
    "ReplayMismatchError",
    "Reversibility",
    "RollbackError",
    "RollbackFailedError",
    "RollbackInProgressError",
    "RollbackNode",
    "RollbackPlan",
    "RollbackReport",
    "SerializationError",
    "SkippedStep",
    "SqliteRollbackSaver",
    "Target",
    "TargetSelector",
    "ToolDefinition",
    "ToolRegistry",
    "UndoneStep",
    "UnrecordedCallWarning",
    "UnregisteredToolError",
    "aplan_rollback",
    "arecord_tool_call",
    "arollback",
    "before_node",
    "classify_tool",
    "current_effect",
    "default_registry",
    "irreversible",
    "plan_rollback",
    "record_tool_call",
    "reversible",
    "rollback",
    "run_start",
]


def test_all_is_sorted_and_pinned() -> None:
    assert langgraph_rollback.__all__ == sorted(langgraph_rollback.__all__)
    assert langgraph_rollback.__all__ == EXPECTED


def test_every_exported_name_exists_and_is_documented() -> None:
    for name in langgraph_rollback.__all__:
        obj = getattr(langgraph_rollback, name)
        if isinstance(obj, langgraph_rollback.ToolRegistry):
            continue
        assert obj.__doc__, f"{name} has no docstring"


def test_errors_form_one_tree() -> None:
    for name in langgraph_rollback.__all__:
        obj = getattr(langgraph_rollback, name)
        if isinstance(obj, type) and issubclass(obj, Warning):
            assert issubclass(obj, UserWarning), name  # users filter these
        elif isinstance(obj, type) and issubclass(obj, Exception):
            assert issubclass(obj, langgraph_rollback.RollbackError), name
