"""Whose words an error's "Fix:" uses: a Python call, a CLI option, or a JSON field.

The same failure (an unknown target, a checkpoint off the path) is met from
Python, from the `langgraph-rollback` command and from the server's routes;
each caller passes its `Voice`, so the fix names what that caller can type.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["Voice", "fix", "given", "on_path_fix", "say"]


class Voice(StrEnum):
    """Whose words an error's "Fix:" uses."""

    PYTHON = "python"
    CLI = "cli"
    HTTP = "http"


def fix(voice: Voice) -> str:
    """The "Fix:" that lists the vocabulary in the caller's terms."""
    if voice is Voice.CLI:
        return (
            "Fix: use --to first, --to run_start, --to run_start:<run id>, --to "
            "before_node:<node>, an effect id from `langgraph-rollback effects DB "
            "--thread T`, or a checkpoint id from `langgraph-rollback checkpoints "
            "DB --thread T`."
        )
    if voice is Voice.HTTP:
        return (
            'Fix: send "to": "first", "run_start", "run_start:<run id>", '
            '"before_node:<node>", an effect id from GET /threads/<id>/effects, '
            "or a checkpoint id."
        )
    return (
        "Fix: pass to='first', to=run_start() (or run_start(run_id)), "
        "to=before_node('name'), an effect id from saver.list_effects(config), "
        "or a checkpoint from graph.get_state_history(config)."
    )


def say(voice: Voice, python: str, cli: str) -> str:
    return cli if voice is not Voice.PYTHON else python


def given(text: str, voice: Voice) -> str:
    return f"--to {text!r}" if voice is Voice.CLI else f"to={text!r}"


def on_path_fix(voice: Voice) -> str:
    """The fix for a target that is not on the path behind the head."""
    if voice is Voice.CLI:
        return (
            "Fix: roll back to a checkpoint on the current path: `langgraph-rollback "
            "checkpoints DB --thread T` marks them."
        )
    if voice is Voice.HTTP:
        return "Fix: send a checkpoint on the current path (GET /threads/<id>/state)."
    return (
        "Fix: roll back to a checkpoint on the current path, e.g. from "
        "`graph.get_state_history(config)` following `parent_config` from the head."
    )
