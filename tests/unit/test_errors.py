"""Every public error pickles, keeping its message and structured attributes."""

from __future__ import annotations

import inspect
import pickle

import pytest

import langgraph_rollback
from langgraph_rollback import RollbackError

SAMPLES: dict[str, dict[str, object]] = {
    "CheckpointNotFoundError": {
        "checkpoint_id": "c1",
        "thread_id": "t1",
        "found_in": ["t2"],
    },
    "DeclarationError": {"message": "bad", "tool": "write_file"},
    "DuplicateToolError": {"tool": "write_file", "existing": "a.f", "new": "b.f"},
    "DurabilityError": {"durability": "exit", "what": "RollbackNode"},
    "EffectNotFoundError": {"effect_id": "e1", "thread_id": "t1"},
    "EffectOutcomeUnknownError": {
        "effect_id": "e1",
        "tool": "charge",
        "thread_id": "t1",
        "idempotency_key": "lgrb-e1",
    },
    "EffectStateError": {"effect_id": "e1", "status": "applied", "expected": "pending"},
    "IrreversibleToolBlockedError": {
        "tool": "send_email",
        "effect_id": "e1",
        "thread_id": "t1",
        "refused_by": "human",
    },
    "LedgerSchemaError": {"found": 9, "supported": 1},
    "LedgerUpgradeError": {"found": 3, "supported": 4, "database": "/srv/agent.sqlite"},
    "NotAnAncestorError": {
        "checkpoint_id": "c1",
        "thread_id": "t1",
        "head_checkpoint_id": "c9",
    },
    "ObservationError": {
        "tool": "write_file",
        "phase": "before",
        "error": OSError("x"),
    },
    "ReplayMismatchError": {
        "effect_id": "e1",
        "recorded_tool": "a",
        "called_tool": "b",
    },
    "RollbackFailedError": {"report": {"status": "failed"}, "message": "stopped"},
    "RollbackInProgressError": {"thread_id": "t1", "holder": "host:1:abc"},
    "SerializationError": {"message": "bad", "tool": "t", "field": "result"},
    "UnregisteredToolError": {"tool": "write_file", "effect_id": "e1"},
    "EffectInFlightError": {
        "effect_id": "e1",
        "tool": "t",
        "thread_id": "t1",
        "owner": "h#1#2",
    },
    "EffectResultUnknownError": {"effect_id": "e1", "tool": "t", "thread_id": "t1"},
    "InvalidTargetError": {"message": "not a target", "target": "lats"},
    "AmbiguousTargetError": {
        "message": "two effects",
        "target": "call_1",
        "candidates": ["e1", "e2"],
    },
}


def public_errors() -> list[type[RollbackError]]:
    found = []
    for name in langgraph_rollback.__all__:
        obj = getattr(langgraph_rollback, name)
        if inspect.isclass(obj) and issubclass(obj, RollbackError):
            found.append(obj)
    return found


def test_every_public_error_has_a_sample() -> None:
    names = {cls.__name__ for cls in public_errors()} - {"RollbackError"}
    names -= {"InvalidConfigError"}  # a plain message, tested below
    assert names <= set(SAMPLES), sorted(names - set(SAMPLES))


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_error_round_trips_through_pickle(name: str) -> None:
    cls = getattr(langgraph_rollback, name)
    error = cls(**SAMPLES[name])
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is cls
    assert str(copy) == str(error)
    for attribute, value in vars(error).items():
        if isinstance(value, BaseException):
            assert repr(getattr(copy, attribute)) == repr(value)
        else:
            assert getattr(copy, attribute) == value, attribute


def test_plain_message_errors_round_trip() -> None:
    for error in (
        langgraph_rollback.InvalidConfigError("limit must be an int. Fix: ..."),
        RollbackError("base"),
    ):
        copy = pickle.loads(pickle.dumps(error))
        assert type(copy) is type(error) and str(copy) == str(error)
