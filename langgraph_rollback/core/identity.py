"""Effect identity: deterministic ids and call keys, the same in every process.

An effect's identity is host-derived and stable across retries and resumes
(DESIGN.md section 3, point 3): the task's namespace and id, and within the
task the call key. The call key holds the tool, a digest of the arguments and
an ordinal among identical calls of the task attempt, and, for a model's tool
call, its `tool_call_id`: models repeat ids, so the id alone would fold two
calls into one.

The digest is of a canonical form of the arguments, so it does not depend on
the process (`PYTHONHASHSEED`): mappings by sorted keys, sets sorted, tuples
as lists, pydantic models and dataclasses by their fields, every element
compared by its encoding. Only the arguments the caller passed count: a
parameter left at its default is recorded (the inverse may need it) but is
not part of the identity. Keys of this form start with `v2:`. (Until the
defaults were left out, v2 keys digested them too; such a key is still
matched, see `core.replay.earlier_row`.) Keys written
before it (`legacy_call_key`) are still matched, so threads interrupted under
the old format resume without repeating a call. When the ledger's payloads
are encrypted, the digest is an HMAC with the database's own key, so the
clear `call_key` says nothing about the arguments.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import hmac
import json
import uuid
from collections.abc import Mapping
from typing import Any

from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
from pydantic import BaseModel

from langgraph_rollback.core.codec import encode_with
from langgraph_rollback.core.task import TaskContext

__all__ = [
    "KEY_FORMAT",
    "args_digest",
    "call_key_base",
    "call_key_for",
    "canonical",
    "effect_id_for",
    "legacy_call_key",
    "unkeyed_call_key",
]

KEY_FORMAT = "v2"
"""The prefix of call keys built from the canonical digest."""

_EFFECT_NAMESPACE = uuid.UUID("5b0a8a53-3c52-4a36-9c39-1d3c2a7f0e11")
_EFFECT_NAMESPACE_BYTES = _EFFECT_NAMESPACE.bytes
_json_string = json.encoder.encode_basestring
_DIGEST_SERDE = JsonPlusSerializer()


def effect_id_for(
    task_ns: str, task_id: str, call_key: str, *, thread_id: str | None = None
) -> str:
    """The deterministic id of an effect (a UUIDv5 of its identity).

    The thread is not part of it: LangGraph derives a task's id from its
    checkpoint's id (a UUIDv6, unique across threads), so `(task_ns, task_id)`
    already names one task of one thread, or of its copies. A thread copied
    with `copy_thread` keeps the checkpoint ids, so resuming the copy finds
    the source's recorded calls and replays what they did; a call the copy
    performs itself is recorded under `thread_id=` the copy's own thread.
    """
    parts = [task_ns, task_id, call_key]
    if thread_id is not None:
        parts.append(thread_id)
    if all(type(part) is str for part in parts):
        # `json.dumps(parts, ensure_ascii=False)` for a list of strings, and
        # `uuid.uuid5` without its UUID object (the same text, checked by
        # tests/unit/test_identity.py): one per recorded call.
        name = "[" + ", ".join(map(_json_string, parts)) + "]"
    else:
        name = json.dumps(parts, ensure_ascii=False)
    digest = bytearray(hashlib.sha1(_EFFECT_NAMESPACE_BYTES + name.encode()).digest())
    digest[6] = (digest[6] & 0x0F) | 0x50  # version 5
    digest[8] = (digest[8] & 0x3F) | 0x80  # RFC 4122 variant
    hex_ = digest[:16].hex()
    return f"{hex_[:8]}-{hex_[8:12]}-{hex_[12:16]}-{hex_[16:20]}-{hex_[20:]}"


def canonical(value: Any) -> Any:
    """`value` in a form whose encoding is the same in every process."""
    kind = type(value)
    if kind in _PLAIN:
        return value
    if kind is dict:
        return _canonical_map(value)
    if kind is list or kind is tuple:
        return [canonical(v) for v in value]
    if isinstance(value, BaseModel):
        fields = value.model_dump(mode="python", round_trip=True)
        return ["__model__", type(value).__qualname__, canonical(fields)]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
        return ["__dataclass__", type(value).__qualname__, canonical(fields)]
    if isinstance(value, Mapping):
        return _canonical_map(value)
    if isinstance(value, (set, frozenset)):
        return ["__set__", sorted((canonical(v) for v in value), key=_encoded)]
    if isinstance(value, (list, tuple)):
        return [canonical(v) for v in value]
    return value


_PLAIN = frozenset({str, int, float, bool, bytes, type(None)})
"""Types `canonical` returns as they are (exactly these, not subclasses)."""


def _canonical_map(value: Mapping[Any, Any]) -> list[Any]:
    pairs = [[canonical(k), canonical(v)] for k, v in value.items()]
    return ["__map__", sorted(pairs, key=_key_encoded)]


def _key_encoded(pair: list[Any]) -> bytes:
    key = pair[0]
    if type(key) is str and len(key) <= 64:
        return _encoded_str(key)
    return _encoded(key)


def _encoded(value: Any) -> bytes:
    return _DIGEST_SERDE.dumps_typed(value)[1]


@functools.lru_cache(maxsize=4096)
def _encoded_str(value: str) -> bytes:
    """`_encoded` of a short string (argument names repeat: kept)."""
    return _encoded(value)


def args_digest(tool: str, args: Mapping[str, Any], *, key: bytes | None = None) -> str:
    """A short digest of a call's arguments, the same in every process.

    Raises `SerializationError` for unstorable arguments, before anything
    runs. With `key`, an HMAC-SHA256 under that key.
    """
    type_, data = encode_with(_DIGEST_SERDE, {"args": canonical(dict(args))}, tool=tool)
    message = type_.encode() + b"\0" + data
    if key is not None:
        return hmac.new(key, message, hashlib.sha256).hexdigest()[:32]
    return hashlib.sha256(message).hexdigest()[:16]


def call_key_for(
    ctx: TaskContext, tool: str, args: Mapping[str, Any], tool_call_id: str | None
) -> tuple[str, int]:
    """The call's identity within its task, and its ordinal.

    Tool, argument digest, the model's `tool_call_id` when there is one, and
    how many identical calls the task attempt made before it: concurrent
    calls that differ in tool or arguments never swap identities, and two
    calls a model gave one id both run. `args` are the arguments the caller
    passed: a parameter left at its default is not part of the identity, so
    a deploy that gives a tool a new optional parameter does not make an
    interrupted thread's calls new ones.
    """
    key = call_key_base(ctx, tool, args, tool_call_id)
    ordinal = ctx.next_ordinal(key)
    return f"{key}#{ordinal}", ordinal


def call_key_base(
    ctx: TaskContext, tool: str, args: Mapping[str, Any], tool_call_id: str | None
) -> str:
    """A call key without its ordinal (`call_key_for`)."""
    return _v2_key(tool, args_digest(tool, args, key=ctx.digest_key), tool_call_id)


def _v2_key(tool: str, digest: str, tool_call_id: str | None) -> str:
    if tool_call_id is not None:
        return f"{KEY_FORMAT}:call:{tool_call_id}:{tool}:{digest}"
    return f"{KEY_FORMAT}:{tool}:{digest}"


def unkeyed_call_key(
    tool: str, args: Mapping[str, Any], tool_call_id: str | None, ordinal: int
) -> str:
    """The `v2:` key the same call had before the database had a digest key."""
    return f"{_v2_key(tool, args_digest(tool, args), tool_call_id)}#{ordinal}"


def legacy_call_key(
    tool: str, args: Mapping[str, Any], tool_call_id: str | None, ordinal: int
) -> str:
    """The key the same call had before `v2:` keys (unsalted, uncanonical)."""
    if tool_call_id is not None:
        return f"call:{tool_call_id}"
    type_, data = encode_with(_DIGEST_SERDE, {"args": args}, tool=tool)
    digest = hashlib.sha256(type_.encode() + b"\0" + data).hexdigest()[:16]
    return f"{tool}:{digest}#{ordinal}"
