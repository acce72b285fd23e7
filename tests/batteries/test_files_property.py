"""Property: after any sequence of file tool calls over awkward paths, a rollback
to any checkpoint gives back the workspace as it was there, byte for byte, and
nothing outside the workspace is ever touched, by a call or an undo."""

from __future__ import annotations

import operator
import os
import tempfile
from pathlib import Path
from typing import Annotated, Any, TypedDict

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from langgraph.graph import END, START, StateGraph

from langgraph_rollback import (
    InMemoryRollbackSaver,
    RollbackError,
    ToolRegistry,
    rollback,
)
from langgraph_rollback.batteries.files import file_tools
from tests.batteries.test_files_regressions import tree

NAMES = [
    "a.txt",
    "d",
    "b.txt",
    "new",
    "é.txt",
    "日本",
    "..",
    ".",
    "",
    "link_out",
    "link_file",
    "link_in",
]


def relative_paths() -> st.SearchStrategy[str]:
    return st.lists(st.sampled_from(NAMES), min_size=1, max_size=3).map("/".join)


SIMPLE = [
    "a.txt",
    "d/b.txt",
    "d",
    "new/x.txt",
    "é.txt",
    "日本/ファイル",
    "link_in",
    "link_out",
]


def paths(base: Path) -> st.SearchStrategy[str]:
    """Plain paths (most often), awkward relative ones, and absolute ones into
    the workspace and out of it."""
    return st.one_of(
        st.sampled_from(SIMPLE),
        st.sampled_from(SIMPLE),
        relative_paths(),
        relative_paths().map(lambda p: str(base / "ws" / p)),
        relative_paths().map(lambda p: str(base / "sibling" / p)),
    )


def operations(base: Path) -> st.SearchStrategy[list[tuple[str, dict[str, Any]]]]:
    text = st.text(max_size=8)
    one = st.one_of(
        st.tuples(
            st.just("write_file"),
            st.fixed_dictionaries({"path": paths(base), "content": text}),
        ),
        st.tuples(
            st.just("append_file"),
            st.fixed_dictionaries({"path": paths(base), "content": text}),
        ),
        st.tuples(st.just("delete_file"), st.fixed_dictionaries({"path": paths(base)})),
        st.tuples(
            st.just("make_directory"), st.fixed_dictionaries({"path": paths(base)})
        ),
        st.tuples(
            st.just("move_file"),
            st.fixed_dictionaries({"source": paths(base), "destination": paths(base)}),
        ),
    )
    return st.lists(one, min_size=1, max_size=6)


def lay_out(base: Path) -> Path:
    """A workspace with files, a directory and links in and out, beside a
    sibling directory and a file that are not the agent's."""
    ws, sibling = base / "ws", base / "sibling"
    (ws / "d").mkdir(parents=True)
    sibling.mkdir()
    (ws / "a.txt").write_bytes(b"alpha\r\n")
    (ws / "d" / "b.txt").write_bytes(b"\x00\xffbinary")
    (ws / "d" / "b.txt").chmod(0o600)
    (sibling / "a.txt").write_text("the sibling's")
    (sibling / "d").mkdir()
    (base / "outside.txt").write_text("the parent's")
    (ws / "link_out").symlink_to(sibling)
    (ws / "link_file").symlink_to(base / "outside.txt")
    (ws / "link_in").symlink_to("d")
    return ws


class Log(TypedDict, total=False):
    log: Annotated[list[str], operator.add]


def graph_of(
    ws: Path, ops: list[tuple[str, dict[str, Any]]], seen: dict[int, Any]
) -> Any:
    registry = ToolRegistry()
    tools = {t.name: t for t in file_tools(ws, registry=registry)}
    builder = StateGraph(Log)

    def node_for(i: int, name: str, args: dict[str, Any]) -> Any:
        def call(state: Log) -> Log:
            seen[i] = tree(ws)  # the workspace at the checkpoint this step starts from
            try:
                tools[name].invoke(args)
            except (RollbackError, OSError) as exc:
                return {"log": [f"{name} refused: {type(exc).__name__}"]}
            return {"log": [f"{name} done"]}

        return call

    previous = START
    for i, (name, args) in enumerate(ops):
        builder.add_node(f"op{i}", node_for(i, name, args))
        builder.add_edge(previous, f"op{i}")
        previous = f"op{i}"
    builder.add_edge(previous, END)
    return builder.compile(checkpointer=InMemoryRollbackSaver(registry=registry))


def outside(base: Path) -> dict[str, Any]:
    return {
        "sibling": tree(base / "sibling"),
        "parent": sorted(os.listdir(base)),
        "file": (base / "outside.txt").read_bytes(),
    }


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_rollback_to_any_checkpoint_gives_the_workspace_back(
    data: st.DataObject,
) -> None:
    with tempfile.TemporaryDirectory() as temp:
        base = Path(temp)
        ws = lay_out(base)
        ops = data.draw(operations(base), label="operations")
        untouched = outside(base)
        seen: dict[int, Any] = {}
        graph = graph_of(ws, ops, seen)
        config: Any = {"configurable": {"thread_id": "property"}}
        graph.invoke({"log": []}, config, durability="sync")
        assert outside(base) == untouched
        step = data.draw(st.integers(0, len(ops) - 1), label="roll back to before op")
        target = next(
            s for s in graph.get_state_history(config) if s.next == (f"op{step}",)
        )
        report = rollback(graph, config, to=target)
        assert report.ok, str(report)
        assert tree(ws) == seen[step]
        assert outside(base) == untouched
