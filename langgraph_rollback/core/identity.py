"""Effect identity: deterministic ids and call keys.

An effect's identity is host-derived and stable across retries and resumes
(DESIGN.md section 3, point 3): the task's namespace and id, and within the
task the call key (the model's `tool_call_id`, or the tool, an argument
digest and an ordinal for calls made directly in a node).
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Mapping
from typing import Any

from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer

from langgraph_rollback.core.codec import encode_payload
from langgraph_rollback.core.task import TaskContext

__all__ = ["args_digest", "call_key_for", "effect_id_for"]

_EFFECT_NAMESPACE = uuid.UUID("5b0a8a53-3c52-4a36-9c39-1d3c2a7f0e11")
_DIGEST_SERDE = JsonPlusSerializer()


def effect_id_for(task_ns: str, task_id: str, call_key: str) -> str:
    """The deterministic id of an effect (a UUIDv5 of its identity).

    The thread is not part of it: LangGraph derives a task's id from its
    checkpoint's id (a UUIDv6, unique across threads), so `(task_ns, task_id)`
    already names one task of one thread, or of its copies. A thread copied
    with `copy_thread` keeps the checkpoint ids, so resuming the copy finds
    the source's recorded effects and replays them instead of calling again
    (the rows stay with the source thread).
    """
    name = json.dumps([task_ns, task_id, call_key], ensure_ascii=False)
    return str(uuid.uuid5(_EFFECT_NAMESPACE, name))


def args_digest(tool: str, args: Mapping[str, Any]) -> str:
    """A short, stable digest of a call's arguments.

    Uses a plain (never encrypted) serializer so the digest does not change
    between processes; raises `SerializationError` for unstorable arguments,
    before anything runs.
    """
    type_, data = encode_payload(_DIGEST_SERDE, {"args": args}, tool=tool)
    return hashlib.sha256(type_.encode() + b"\0" + data).hexdigest()[:16]


def call_key_for(
    ctx: TaskContext, tool: str, args: Mapping[str, Any], tool_call_id: str | None
) -> tuple[str, int | None]:
    """The call's identity within its task, and its ordinal when it has one.

    A `ToolNode` call is keyed by the model's `tool_call_id` (calls of one step
    run concurrently, so any counter would depend on timing). A direct call in
    a node is keyed by tool, argument digest and how many identical calls the
    task attempt made before it, so concurrent calls that differ in tool or
    arguments never swap identities.
    """
    if tool_call_id is not None:
        return f"call:{tool_call_id}", None
    key = f"{tool}:{args_digest(tool, args)}"
    ordinal = ctx.next_ordinal(key)
    return f"{key}#{ordinal}", ordinal
