"""Effect identity (`core.identity`) and the task it is counted in (`core.task`)."""

from __future__ import annotations

import collections
import dataclasses
import json
import threading
import uuid
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel

from langgraph_rollback._errors import SerializationError
from langgraph_rollback.core.identity import (
    args_digest,
    call_key_for,
    canonical,
    effect_id_for,
    legacy_call_key,
)
from langgraph_rollback.core.task import approved
from tests.unit.build import Scope, context


def test_effect_id_is_a_stable_uuid_of_the_identity() -> None:
    one = effect_id_for("node:1", "task", "call:a")
    assert one == effect_id_for("node:1", "task", "call:a")
    assert one != effect_id_for("node:1", "task", "call:b")
    assert one != effect_id_for("node:2", "task", "call:a")
    assert len(one) == 36


_NAMESPACE = uuid.UUID("5b0a8a53-3c52-4a36-9c39-1d3c2a7f0e11")


def _uuid5_of(*parts: str) -> str:
    """The id as it was first written: `uuid.uuid5` of the parts' JSON list."""
    return str(uuid.uuid5(_NAMESPACE, json.dumps(list(parts), ensure_ascii=False)))


def test_effect_ids_are_what_they_were_when_first_written() -> None:
    # Fixed values: ids in ledgers already written must match on resume.
    assert effect_id_for("node:1", "task", "call:a") == _uuid5_of(
        "node:1", "task", "call:a"
    )
    assert effect_id_for("tools:x", "t", "v2:w:ab#0") == (
        "782fc3d8-de1e-56b0-bbe0-b6e1c5f60608"
    )


_TEXT = st.text(st.characters(exclude_categories=["Cs"]), max_size=40)


@given(_TEXT, _TEXT, _TEXT, st.none() | _TEXT)
def test_effect_id_is_uuid5_of_the_json_list_for_any_text(
    task_ns: str, task_id: str, call_key: str, thread_id: str | None
) -> None:
    parts = [task_ns, task_id, call_key] + ([] if thread_id is None else [thread_id])
    assert effect_id_for(task_ns, task_id, call_key, thread_id=thread_id) == (
        _uuid5_of(*parts)
    )


def test_a_copied_thread_s_own_call_has_an_id_of_its_thread() -> None:
    shared = effect_id_for("node:1", "task", "call:a")
    own = effect_id_for("node:1", "task", "call:a", thread_id="copy")
    assert own != shared
    assert own == effect_id_for("node:1", "task", "call:a", thread_id="copy")
    assert own != effect_id_for("node:1", "task", "call:a", thread_id="other")


def test_args_digest_depends_on_the_arguments_only() -> None:
    assert args_digest("w", {"a": 1, "b": [2]}) == args_digest("w", {"a": 1, "b": [2]})
    assert args_digest("w", {"a": 1}) != args_digest("w", {"a": 2})
    assert len(args_digest("w", {})) == 16


def test_args_digest_refuses_unstorable_arguments() -> None:
    with pytest.raises(SerializationError):
        args_digest("w", {"lock": threading.Lock()})


def test_model_tool_call_is_keyed_by_its_id_tool_and_arguments() -> None:
    ctx = context()
    digest = args_digest("w", {"a": 1})
    first = call_key_for(ctx, "w", {"a": 1}, "call-9")
    assert first == (f"v2:call:call-9:w:{digest}#0", 0)
    # A model that repeats an id: another call, or an identical one, differ.
    assert call_key_for(ctx, "w", {"a": 2}, "call-9")[0] != first[0]
    assert call_key_for(ctx, "w", {"a": 1}, "call-9") == (
        f"v2:call:call-9:w:{digest}#1",
        1,
    )


def test_direct_calls_count_per_tool_and_arguments() -> None:
    ctx = context()
    first = call_key_for(ctx, "w", {"a": 1}, None)
    again = call_key_for(ctx, "w", {"a": 1}, None)
    other = call_key_for(ctx, "w", {"a": 2}, None)
    digest = args_digest("w", {"a": 1})
    assert first == (f"v2:w:{digest}#0", 0)
    assert again == (f"v2:w:{digest}#1", 1)
    assert other[1] == 0


def test_digest_is_canonical() -> None:
    """Mapping order, set order and tuple-vs-list do not change the digest."""
    assert args_digest("w", {"a": 1, "b": {2, 1}}) == args_digest(
        "w", {"b": {1, 2}, "a": 1}
    )
    assert args_digest("w", {"x": (1, 2)}) == args_digest("w", {"x": [1, 2]})
    assert args_digest("w", {"x": {"k": 1, "j": 2}}) == args_digest(
        "w", {"x": {"j": 2, "k": 1}}
    )
    assert args_digest("w", {"x": frozenset("ab")}) == args_digest(
        "w", {"x": {"b", "a"}}
    )
    # The digest is of the arguments only; the tool is in the call key.
    assert args_digest("w", {"a": 1}) == args_digest("v", {"a": 1})
    assert args_digest("w", {"a": 1}) != args_digest("w", {"a": 2})


Pair = collections.namedtuple("Pair", "p q")


@pytest.mark.parametrize(
    ("args", "digest"),
    [
        (
            {"path": "/a", "content": "x", "n": 3, "f": 1.5, "ok": True, "none": None}
            | {"raw": b"b"},
            "443e8588a531303f",
        ),
        (
            {"m": {"b": [1, (2, 3)], 3: None, None: 2, b"k": {"z", "y"}}},
            "4f83cecd9fa3a648",
        ),
        (
            {"o": collections.OrderedDict(b=1, a=2), "t": Pair(1, {"q": 2})},
            "6a4f14683dfc7634",
        ),
        ({"k" * 100: 1, "é": 2, "ab": 3, "b": 4}, "c150abfd35ba5bfc"),
    ],
    ids=["scalars", "nested", "subclasses", "long-and-unicode-keys"],
)
def test_digests_never_change(args: dict[str, Any], digest: str) -> None:
    """Stored call keys hold these digests: a change of the canonical form
    would make every interrupted thread's calls new ones."""
    assert args_digest("w", args) == digest


class Point(BaseModel):
    tags: set[str]


@dataclasses.dataclass
class Box:
    tags: set[str]


def test_models_and_dataclasses_digest_by_their_fields() -> None:
    assert canonical(Point(tags={"b", "a"})) == canonical(Point(tags={"a", "b"}))
    assert canonical(Box(tags={"b", "a"})) == [
        "__dataclass__",
        "Box",
        canonical({"tags": {"a", "b"}}),
    ]
    assert canonical(Point(tags=set()))[0] == "__model__"


def test_a_keyed_digest_is_an_hmac() -> None:
    plain = args_digest("w", {"pin": "4821"})
    keyed = args_digest("w", {"pin": "4821"}, key=b"k" * 32)
    assert keyed != plain and len(keyed) == 32
    assert keyed != args_digest("w", {"pin": "4821"}, key=b"j" * 32)


def test_legacy_keys_are_the_old_format() -> None:
    assert legacy_call_key("w", {"a": 1}, "call-9", 0) == "call:call-9"
    assert legacy_call_key("w", {"a": 1}, None, 2).startswith("w:")
    assert legacy_call_key("w", {"a": 1}, None, 2).endswith("#2")


def test_ordinals_restart_for_a_new_attempt_and_a_new_task() -> None:
    scope = Scope()
    ctx = context(scope=scope)
    assert ctx.next_ordinal("k") == 0
    assert ctx.next_ordinal("k") == 1
    assert context(scope=scope, attempt=2).next_ordinal("k") == 0
    assert context(scope=scope).next_ordinal("k") == 2
    assert context().next_ordinal("k") == 0


@pytest.mark.parametrize(
    "answer",
    [
        True,
        "yes",
        " Approve ",
        "y",
        "TRUE",
        "approved",
        {"approve": True},
        {"approved": "yes"},
    ],
)
def test_answers_that_approve(answer: Any) -> None:
    assert approved(answer)


@pytest.mark.parametrize(
    "answer", [False, None, 1, "no", "", {"approve": False}, {}, {"skip": ["e1"]}]
)
def test_answers_that_do_not(answer: Any) -> None:
    assert not approved(answer)


def test_an_effect_id_of_parts_that_are_not_text_is_still_their_json() -> None:
    # Not a call the package makes; the id is still uuid5 of the JSON list.
    odd: Any = 7
    assert effect_id_for("node:1", odd, "call:a") == str(
        uuid.uuid5(_NAMESPACE, json.dumps(["node:1", 7, "call:a"], ensure_ascii=False))
    )
