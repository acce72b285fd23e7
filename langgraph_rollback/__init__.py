"""langgraph-rollback: an undo button for what LangGraph agents do to the world.

A drop-in LangGraph checkpointer that stores, beside the graph state, a
write-ahead ledger of every side effect the agent's declared tools perform,
so that replays never repeat them and rollbacks can undo them.

```python
from langgraph_rollback import SqliteRollbackSaver, reversible

@reversible(undo=lambda effect: Path(effect.args["path"]).unlink())
def create_file(path: str, content: str) -> str:
    Path(path).write_text(content)
    return path

with SqliteRollbackSaver.from_conn_string("agent.sqlite") as saver:
    graph = builder.compile(checkpointer=saver)
    graph.invoke(inputs, config)
    saver.list_effects(config)
```
"""

from langgraph_rollback._capture import (
    arecord_tool_call,
    classify_tool,
    record_tool_call,
)
from langgraph_rollback._current import current_effect
from langgraph_rollback._declare import irreversible, reversible
from langgraph_rollback._errors import (
    AmbiguousTargetError,
    CheckpointNotFoundError,
    DeclarationError,
    DuplicateToolError,
    DurabilityError,
    EffectInFlightError,
    EffectNotFoundError,
    EffectOutcomeUnknownError,
    EffectResultUnknownError,
    EffectStateError,
    InvalidConfigError,
    InvalidTargetError,
    IrreversibleToolBlockedError,
    LedgerSchemaError,
    LedgerUpgradeError,
    NotAnAncestorError,
    ObservationError,
    ReplayMismatchError,
    RollbackError,
    RollbackFailedError,
    RollbackInProgressError,
    SerializationError,
    UnrecordedCallWarning,
    UnregisteredToolError,
)
from langgraph_rollback._models import (
    AuditAction,
    AuditEntry,
    Effect,
    EffectStatus,
    Reversibility,
)
from langgraph_rollback._node import RollbackNode
from langgraph_rollback._rollback import (
    aplan_rollback,
    arollback,
    plan_rollback,
    rollback,
)
from langgraph_rollback.core.plan import Decision, PlannedStep, RollbackPlan
from langgraph_rollback.core.registry import (
    ToolDefinition,
    ToolRegistry,
    default_registry,
)
from langgraph_rollback.core.report import (
    FailedStep,
    RollbackReport,
    SkippedStep,
    UndoneStep,
)
from langgraph_rollback.core.targets import (
    Target,
    TargetSelector,
    before_node,
    run_start,
)
from langgraph_rollback.savers.aio_sqlite import AsyncSqliteRollbackSaver
from langgraph_rollback.savers.base import BaseRollbackSaver
from langgraph_rollback.savers.memory import InMemoryRollbackSaver
from langgraph_rollback.savers.sqlite import SqliteRollbackSaver

__all__ = [
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

__version__ = "0.1.0"
