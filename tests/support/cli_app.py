"""A user's app, as the CLI tests load it with `--graph tests.support.cli_app:builder`.

Its tools write files in the directory named by `CLI_APP_DIR`.
"""

from __future__ import annotations

import operator
import os
from pathlib import Path
from typing import Annotated, Any, TypedDict

from langgraph.graph import END, START, StateGraph

from langgraph_rollback import Effect, irreversible, reversible


def _dir() -> Path:
    return Path(os.environ["CLI_APP_DIR"])


class State(TypedDict, total=False):
    log: Annotated[list[str], operator.add]


def _remove(effect: Effect) -> str:
    (_dir() / effect.args["name"]).unlink()
    return f"deleted {effect.args['name']}"


@reversible(undo=_remove)
def cli_write(name: str, text: str) -> str:
    (_dir() / name).write_text(text)
    return f"wrote {name}"


@irreversible(reason="announcements cannot be taken back")
def cli_announce(text: str) -> str:
    return f"announced {text}"


def _work(state: State) -> dict[str, Any]:
    return {
        "log": [cli_write(f"f{i}.txt", str(i)) for i in range(12)]
        + [cli_announce("hi")]
    }


builder = StateGraph(State)
builder.add_node("work", _work)
builder.add_edge(START, "work")
builder.add_edge("work", END)


def make_graph(saver: Any) -> Any:
    """A factory, as `--graph-factory tests.support.cli_app:make_graph` calls it."""
    return builder.compile(checkpointer=saver)
