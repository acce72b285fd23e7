"""The targets vocabulary: parsing what a caller passed, and resolving it (no I/O)."""

from __future__ import annotations

from typing import Any

import pytest
from langgraph.checkpoint.base import CheckpointTuple
from langgraph.types import StateSnapshot

from langgraph_rollback._errors import (
    AmbiguousTargetError,
    CheckpointNotFoundError,
    InvalidTargetError,
)
from langgraph_rollback.core.config import checkpoint_config
from langgraph_rollback.core.ops import (
    CheckpointLink,
    ExistingCheckpoints,
    FindCheckpoint,
    FindEffect,
    FindNamespace,
    ReadAncestry,
    ReadCheckpoint,
    ReadHead,
    Select,
)
from langgraph_rollback.core.plan import THREAD_START
from langgraph_rollback.core.targets import (
    TargetSelector,
    before_node,
    is_target,
    parse_target,
    run_start,
    target_flow,
)
from langgraph_rollback.core.voice import Voice, fix, on_path_fix, resolve_fix
from tests.unit import build
from tests.unit.script import Script


def parse(to: Any, voice: Voice = Voice.PYTHON) -> TargetSelector:
    return parse_target(to, thread_id="t", voice=voice)


# --- parsing ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("first", TargetSelector("first")),
        ("First", TargetSelector("first")),
        ("  FIRST ", TargetSelector("first")),
        ("run_start", TargetSelector("run_start")),
        ("RUN-START", TargetSelector("run_start")),
        ("run_start:run-7", TargetSelector("run_start", "run-7")),
        ("before_node:plan", TargetSelector("before_node", "plan")),
        ("Before-Node: plan ", TargetSelector("before_node", "plan")),
        ("1f0e-abc", TargetSelector("id", "1f0e-abc")),
        ("call_abc:1", TargetSelector("id", "call_abc:1")),
    ],
)
def test_text_targets(text: str, expected: TargetSelector) -> None:
    assert parse(text) == expected


def test_objects_are_targets() -> None:
    assert parse(run_start()) == TargetSelector("run_start")
    assert parse(build.effect("e9")) == TargetSelector("effect", "e9")
    config = checkpoint_config("t", "c1")
    assert parse(config) == TargetSelector("checkpoint", "c1")
    snapshot = StateSnapshot({}, (), config, {}, None, None, (), ())
    assert parse(snapshot) == TargetSelector("checkpoint", "c1")
    assert str(TargetSelector("run_start", "r1")) == "run_start:r1"
    assert str(TargetSelector("id", "c1")) == "c1"
    assert is_target("first") and is_target(before_node("a")) and not is_target(3)


@pytest.mark.parametrize(
    ("to", "says"),
    [
        ("", "is empty"),
        ("first:c1", "'first' takes no value"),
        ("before_node:", "names no node"),
        ("run_start:", "names no run"),
        (" Run-Start: ", "names no run"),
        (12, "is a int"),
        ({"configurable": {}}, "without `configurable.checkpoint_id`"),
        ({"configurable": {"checkpoint_id": "c", "checkpoint_ns": "s:1"}}, "subgraph"),
    ],
)
def test_bad_targets_are_typed_errors(to: Any, says: str) -> None:
    with pytest.raises(InvalidTargetError, match=says) as info:
        parse(to)
    assert isinstance(info.value.target, str)


def test_a_config_of_another_thread_is_not_found() -> None:
    with pytest.raises(CheckpointNotFoundError) as info:
        parse(checkpoint_config("other", "c1"))
    assert info.value.found_in == ["other"]


def test_before_node_needs_a_name() -> None:
    with pytest.raises(InvalidTargetError, match="non-empty string"):
        before_node("")


@pytest.mark.parametrize("run_id", ["", "  ", 7])
def test_run_start_of_an_empty_run_id_is_refused(run_id: Any) -> None:
    with pytest.raises(InvalidTargetError, match="non-empty string"):
        run_start(run_id)


@pytest.mark.parametrize(
    ("voice", "says"),
    [
        (Voice.PYTHON, "to=run_start(run_id)"),
        (Voice.CLI, "--to run_start:<run id>"),
        (Voice.HTTP, '"to": "run_start:<run id>"'),
    ],
)
def test_run_start_with_an_empty_run_id_names_the_fix_in_the_callers_terms(
    voice: Voice, says: str
) -> None:
    with pytest.raises(InvalidTargetError, match="names no run") as info:
        parse("run_start:", voice)
    assert says in str(info.value)


def test_fixes_speak_the_callers_terms() -> None:
    assert "--to first" in fix(Voice.CLI) and "to='first'" not in fix(Voice.CLI)
    assert "to='first'" in fix(Voice.PYTHON)
    assert '"to": "first"' in fix(Voice.HTTP)
    with pytest.raises(InvalidTargetError, match="--to 'first:x'"):
        parse("first:x", Voice.CLI)
    with pytest.raises(InvalidTargetError, match="--to before_node:planner"):
        parse("before_node:", Voice.CLI)
    assert "checkpoints DB" in on_path_fix(Voice.CLI)
    assert "GET /threads" in on_path_fix(Voice.HTTP)
    assert "get_state_history" in on_path_fix(Voice.PYTHON)


# --- resolving -------------------------------------------------------------------


def link(
    checkpoint_id: str,
    parent: str | None,
    source: str = "loop",
    step: int | None = None,
    run_id: str | None = None,
) -> CheckpointLink:
    return CheckpointLink(checkpoint_id, parent, (), source, step, run_id)


def resolve(
    selector: TargetSelector, head: str | None = "c9", voice: Voice = Voice.PYTHON
) -> Script:
    return Script(target_flow(selector, "t", head=head, voice=voice))


def test_a_checkpoint_resolves_to_itself() -> None:
    assert resolve(TargetSelector("checkpoint", "c1")).returns() == "c1"


def test_first_is_the_thread_s_empty_start_without_a_walk() -> None:
    flow = resolve(TargetSelector("first"), head=None)
    flow.reply(ReadHead, "c3", thread_id="t")
    assert flow.returns() == THREAD_START == "first"


def test_no_checkpoints_names_no_target() -> None:
    flow = resolve(TargetSelector("first"), head=None)
    flow.reply(ReadHead, None)
    assert "has no checkpoints" in str(flow.raises(CheckpointNotFoundError))


def test_run_start_is_after_the_latest_input() -> None:
    flow = resolve(run_start())
    chain = [
        link("c5", "c4", step=2),
        link("c4", "c3", step=1),
        link("c3", "c2", step=0),
        link("c2", "c1", "input", step=-1),
        link("c1", None, "input", step=-1),
    ]
    flow.reply(ReadAncestry, chain, start="c9", stop=THREAD_START)
    assert flow.returns() == "c3"


def test_run_start_of_a_head_that_is_an_input_is_the_head() -> None:
    flow = resolve(run_start(), head="c1")
    flow.reply(ReadAncestry, [link("c1", None, "input", step=-1)])
    assert flow.returns() == "c1"


def test_run_start_across_unstored_steps_is_where_the_run_started() -> None:
    # durability "exit": each run stores only its last checkpoint.
    flow = resolve(run_start())
    flow.reply(ReadAncestry, [link("c6", "c2", step=6), link("c2", None, step=2)])
    assert flow.returns() == "c2"


def test_steps_unknown_or_not_a_loop_are_no_gap() -> None:
    flow = resolve(run_start())
    chain = [
        link("c4", "c3", step=None),
        link("c3", "c2", "update", step=9),
        link("c2", "c1", "input", step=1),
        link("c1", None, step=0),
    ]
    flow.reply(ReadAncestry, chain)
    assert flow.returns() == "c3"


def test_run_start_before_any_stored_checkpoint_is_not_found() -> None:
    flow = resolve(run_start(), voice=Voice.CLI)
    flow.reply(ReadAncestry, [link("c2", None, step=2)])
    error = flow.raises(CheckpointNotFoundError)
    assert "use --to first" in str(error)


def test_run_start_of_a_named_run() -> None:
    chain = [
        link("c6", "c5", step=4, run_id="r2"),
        link("c5", "c4", step=3, run_id="r2"),
        link("c4", "c3", "input", step=2, run_id="r2"),
        link("c3", "c2", step=1, run_id="r1"),
        link("c2", "c1", step=0, run_id="r1"),
        link("c1", None, "input", step=-1, run_id="r1"),
    ]
    flow = resolve(run_start("r2"))
    flow.reply(ReadAncestry, chain)
    assert flow.returns() == "c5"
    flow = resolve(run_start("r1"))
    flow.reply(ReadAncestry, chain)
    assert flow.returns() == "c2"


def test_run_start_of_a_resuming_run_is_the_checkpoint_it_resumed() -> None:
    chain = [
        link("c4", "c3", step=3, run_id="r2"),
        link("c3", "c2", step=2, run_id="r1"),
        link("c2", None, "input", step=1, run_id="r1"),
    ]
    flow = resolve(run_start("r2"))
    flow.reply(ReadAncestry, chain)
    assert flow.returns() == "c3"


def test_run_start_of_an_unknown_run_or_one_before_any_checkpoint() -> None:
    flow = resolve(run_start("nope"))
    flow.reply(ReadAncestry, [link("c1", None, run_id="r1")])
    assert "run 'nope'" in str(flow.raises(CheckpointNotFoundError))
    flow = resolve(run_start("r1"), voice=Voice.CLI)
    flow.reply(ReadAncestry, [link("c1", None, step=3, run_id="r1")])
    assert "--to first" in str(flow.raises(CheckpointNotFoundError))


def snapshot(
    checkpoint_id: str, parent: str | None, seen: dict[str, Any]
) -> CheckpointTuple:
    return CheckpointTuple(
        config=checkpoint_config("t", checkpoint_id),
        checkpoint={"versions_seen": seen},  # type: ignore[typeddict-item]
        metadata={},  # type: ignore[typeddict-item]
        parent_config=checkpoint_config("t", parent) if parent else None,
    )


def test_before_node_is_where_it_last_ran_from_matching_case() -> None:
    flow = resolve(before_node("WRITE"), head="c4")
    flow.reply(ReadCheckpoint, snapshot("c4", "c3", {"write": 2}))
    flow.reply(ReadCheckpoint, snapshot("c3", "c2", {"write": 2}))
    flow.reply(ReadCheckpoint, snapshot("c2", "c1", {"write": 1}))
    assert flow.returns() == "c2"


def test_before_node_spelled_exactly() -> None:
    flow = resolve(before_node("write"), head="c2")
    flow.reply(ReadCheckpoint, snapshot("c2", "c1", {"write": 2, "Write": 2}))
    flow.reply(ReadCheckpoint, snapshot("c1", None, {"write": 1}))
    assert flow.returns() == "c1"


def test_before_node_names_that_differ_only_in_case_are_ambiguous() -> None:
    flow = resolve(before_node("write"), head="c2")
    flow.reply(ReadCheckpoint, snapshot("c2", "c1", {"Write": 1, "WRITE": 1}))
    flow.reply(ReadCheckpoint, snapshot("c1", None, {}))
    assert "differ only in case" in str(flow.raises(InvalidTargetError))


def test_before_node_that_never_ran_or_a_gone_checkpoint() -> None:
    flow = resolve(before_node("write"), head="c2", voice=Voice.CLI)
    flow.reply(ReadCheckpoint, snapshot("c2", "c1", {"other": 1}))
    flow.reply(ReadCheckpoint, snapshot("c1", None, {}))
    error = flow.raises(CheckpointNotFoundError)
    assert "no checkpoint ran node 'write'" in str(error)
    assert "langgraph-rollback checkpoints" in str(error)
    flow = resolve(before_node("write"), head="c2")
    flow.reply(ReadCheckpoint, None)
    assert "get_state_history" in str(flow.raises(CheckpointNotFoundError))


def test_an_id_that_is_a_checkpoint() -> None:
    flow = resolve(TargetSelector("id", "c1"), head=None)
    flow.reply(ReadHead, "c9")
    flow.reply(ExistingCheckpoints, {"c1"}, checkpoint_ids=["c1"])
    assert flow.returns() == "c1"


def ledger(**fields: Any) -> Any:
    return build.row(**fields)


def test_an_id_that_is_an_effect_is_its_tasks_checkpoint() -> None:
    flow = resolve(TargetSelector("id", "e1"))
    flow.reply(ExistingCheckpoints, set())
    flow.reply(Select, [ledger(effect_id="e1", root_checkpoint_id="c4")])
    flow.reply(ExistingCheckpoints, {"c4"}, checkpoint_ids=["c4"])
    assert flow.returns() == "c4"


def test_an_effect_whose_checkpoint_was_never_stored_is_placed_by_its_base() -> None:
    flow = resolve(TargetSelector("effect", "e1"))
    row = ledger(effect_id="e1", root_checkpoint_id="c4", base_checkpoint_id="c2")
    flow.reply(Select, [row])
    flow.reply(ExistingCheckpoints, set())
    assert flow.returns() == "c2"


def test_an_effect_before_any_checkpoint_points_to_first() -> None:
    flow = resolve(TargetSelector("effect", "e1"), voice=Voice.CLI)
    row = ledger(effect_id="e1", root_checkpoint_id="c4", base_checkpoint_id=None)
    flow.reply(Select, [row])
    flow.reply(ExistingCheckpoints, set())
    assert "use --to first" in str(flow.raises(CheckpointNotFoundError))


def test_an_unknown_effect() -> None:
    flow = resolve(TargetSelector("effect", "e1"), voice=Voice.CLI)
    flow.reply(Select, [])
    flow.reply(FindNamespace, [], thread_id="t", checkpoint_id="e1")
    flow.reply(FindEffect, None, effect_id="e1")
    assert "langgraph-rollback effects" in str(flow.raises(CheckpointNotFoundError))


def test_a_tool_call_id_naming_one_effect() -> None:
    flow = resolve(TargetSelector("id", "call_1"))
    flow.reply(ExistingCheckpoints, set())
    flow.reply(Select, [])
    select = flow.expect(Select)
    assert select.query.tool_call_id == "call_1"
    flow.send([ledger(effect_id="e1", root_checkpoint_id="c4")])
    flow.reply(ExistingCheckpoints, {"c4"})
    assert flow.returns() == "c4"


def test_a_tool_call_id_naming_two_effects_is_ambiguous() -> None:
    flow = resolve(TargetSelector("id", "call_1"))
    flow.reply(ExistingCheckpoints, set())
    flow.reply(Select, [])
    flow.reply(Select, [ledger(effect_id="e1"), ledger(effect_id="e2")])
    error = flow.raises(AmbiguousTargetError)
    assert error.candidates == ["e1", "e2"]
    assert error.target == "call_1"


def test_an_id_of_another_thread_names_it() -> None:
    flow = resolve(TargetSelector("id", "c1"), voice=Voice.CLI)
    flow.reply(ExistingCheckpoints, set())
    flow.reply(Select, [])
    flow.reply(Select, [])
    flow.reply(FindCheckpoint, ["other"])
    error = flow.raises(CheckpointNotFoundError)
    assert error.found_in == ["other"]
    assert "--thread other" in str(error)


@pytest.mark.parametrize(("word", "hint"), [("last", True), ("nope", False)])
def test_an_id_that_names_nothing(word: str, hint: bool) -> None:
    flow = resolve(TargetSelector("id", word))
    flow.reply(ExistingCheckpoints, set())
    flow.reply(Select, [])
    flow.reply(Select, [])
    flow.reply(FindCheckpoint, [])
    flow.reply(FindNamespace, [])
    flow.reply(FindEffect, None)
    error = flow.raises(CheckpointNotFoundError)
    assert "no checkpoint, effect or tool call" in str(error)
    assert ("the word is run_start" in str(error)) is hint


# --- ids spelled like keywords, subgraph ids, other threads' effects -------------


def test_a_tool_call_id_spelled_like_a_keyword_names_its_effect() -> None:
    flow = resolve(parse("First"))
    flow.reply(ExistingCheckpoints, set(), checkpoint_ids=["First"])
    flow.reply(Select, [])
    flow.reply(Select, [ledger(effect_id="e1", root_checkpoint_id="c4")])
    flow.reply(ExistingCheckpoints, {"c4"})
    assert flow.returns() == "c4"


def test_an_exact_keyword_that_names_no_run_is_the_id() -> None:
    flow = resolve(parse("run_start:x"))
    flow.reply(ExistingCheckpoints, set())
    flow.reply(Select, [])
    flow.reply(Select, [ledger(effect_id="e1", root_checkpoint_id="c4")])
    flow.reply(ReadAncestry, [link("c9", None, "input", step=-1)])
    flow.reply(ExistingCheckpoints, {"c4"})
    assert flow.returns() == "c4"


@pytest.mark.parametrize(
    ("voice", "says"),
    [
        (Voice.PYTHON, "TargetSelector('first')"),
        (Voice.CLI, "--to FIRST"),
        (Voice.HTTP, '"FIRST"'),
    ],
)
def test_an_exact_keyword_that_is_also_a_checkpoint_id_is_ambiguous(
    voice: Voice, says: str
) -> None:
    flow = resolve(parse("first", voice), voice=voice)
    flow.reply(ExistingCheckpoints, {"first"})
    error = flow.raises(AmbiguousTargetError)
    assert error.candidates == [THREAD_START, "first"]
    assert says in str(error)


def test_an_exact_run_keyword_that_is_also_a_tool_call_id_is_ambiguous() -> None:
    flow = resolve(parse("run_start:r1"))
    flow.reply(ExistingCheckpoints, set())
    flow.reply(Select, [])
    flow.reply(Select, [ledger(effect_id="e1", tool="write")])
    flow.reply(ReadAncestry, [link("c2", "c1", run_id="r1"), link("c1", None)])
    error = flow.raises(AmbiguousTargetError)
    assert error.candidates == ["c1", "e1"]
    assert "TargetSelector('run_start', 'r1')" in str(error)


def test_an_id_is_looked_up_as_given_then_without_spaces() -> None:
    flow = resolve(parse(" call-1"))
    flow.reply(ExistingCheckpoints, set(), checkpoint_ids=[" call-1"])
    flow.reply(Select, [])
    flow.reply(Select, [])
    flow.reply(ExistingCheckpoints, set(), checkpoint_ids=["call-1"])
    flow.reply(Select, [ledger(effect_id="e1", root_checkpoint_id="c4")])
    flow.reply(ExistingCheckpoints, {"c4"})
    assert flow.returns() == "c4"


def nothing_named(flow: Script) -> None:
    flow.reply(ExistingCheckpoints, set())
    flow.reply(Select, [])
    flow.reply(Select, [])
    flow.reply(FindCheckpoint, [])


def test_a_subgraph_checkpoint_id_is_refused_naming_the_root_checkpoint() -> None:
    flow = resolve(TargetSelector("id", "s1"))
    nothing_named(flow)
    flow.reply(FindNamespace, ["sub:1"], thread_id="t", checkpoint_id="s1")
    flow.reply(Select, [ledger(root_checkpoint_id="c3")])
    error = flow.raises(InvalidTargetError)
    assert "subgraph namespace 'sub:1'" in str(error) and "(c3)" in str(error)


def test_an_effect_id_of_another_thread_names_that_thread() -> None:
    flow = resolve(TargetSelector("id", "e7"), voice=Voice.CLI)
    nothing_named(flow)
    flow.reply(FindNamespace, [])
    flow.reply(FindEffect, "u", effect_id="e7")
    error = flow.raises(CheckpointNotFoundError)
    assert error.found_in == ["u"] and "--thread u" in str(error)


def command_input(pending: list[tuple[str, str, Any]]) -> Script:
    flow = resolve(run_start())
    chain = [
        link("c5", "c4", step=2, run_id="r2"),
        link("c4", "c3", step=1, run_id="r1"),
        link("c3", "c2", step=0, run_id="r1"),
        link("c2", None, "input", step=-1, run_id="r1"),
    ]
    flow.reply(ReadAncestry, chain)
    tup = snapshot("c4", "c3", {})._replace(pending_writes=pending)
    flow.reply(ReadCheckpoint, tup, config=checkpoint_config("t", "c4"))
    return flow


def test_run_start_after_a_command_input_is_the_checkpoint_it_was_given_to() -> None:
    null = "00000000-0000-0000-0000-000000000000"
    flow = command_input([(null, "run", 2), (null, "branch:to:plan", "__start__")])
    assert flow.returns() == "c4"


def test_run_start_after_a_resume_under_another_run_id_is_the_same_input() -> None:
    null = "00000000-0000-0000-0000-000000000000"
    assert command_input([(null, "__resume__", "yes")]).returns() == "c3"


def test_the_command_input_task_id_and_resume_channel_are_langgraph_s() -> None:
    from langgraph._internal._constants import NULL_TASK_ID, RESUME

    from langgraph_rollback.core import runs

    assert (runs.NULL_TASK_ID, runs.RESUME) == (NULL_TASK_ID, RESUME)


def test_before_node_of_an_unknown_node_lists_the_nodes_that_ran() -> None:
    flow = resolve(before_node("inner"), head="c2")
    flow.reply(ReadCheckpoint, snapshot("c2", "c1", {"sub": {"x": 2}}))
    flow.reply(ReadCheckpoint, snapshot("c1", None, {"__start__": {"x": 1}}))
    error = str(flow.raises(CheckpointNotFoundError))
    assert "nodes that ran: 'sub'" in error and "subgraph" in error


def test_http_fixes_name_json_fields() -> None:
    with pytest.raises(InvalidTargetError) as info:
        parse("before_node:", Voice.HTTP)
    assert '"to": "before_node:planner"' in str(info.value)
    assert "to=" not in str(info.value)


def test_resolve_fixes_speak_the_callers_terms() -> None:
    assert "applied=True|False" in resolve_fix(Voice.PYTHON, "e1", "call")
    assert "resolve DB --thread T e1 --applied|--not-applied" in resolve_fix(
        Voice.CLI, "e1", "call"
    )
    inverse = resolve_fix(Voice.CLI, "e1", "inverse")
    assert "--compensated|--not-compensated" in inverse
    assert "compensated=True|False" in resolve_fix(Voice.PYTHON, "e1", "inverse")


def test_a_keyword_given_as_text_that_is_no_id_is_the_keyword() -> None:
    flow = resolve(parse("first"))
    flow.reply(ExistingCheckpoints, set(), checkpoint_ids=["first"])
    flow.reply(Select, [])
    flow.reply(Select, [])
    assert flow.returns() == THREAD_START
