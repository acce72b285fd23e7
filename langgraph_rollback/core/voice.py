"""Whose words an error's "Fix:" uses: a Python call, a CLI option, or a JSON field.

The same failure (an unknown target, a checkpoint off the path, a refused
rollback, an effect to resolve) is met from Python, from the
`langgraph-rollback` command and from the server's routes; each caller
passes its `Voice`, so the fix names what that caller can type.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = [
    "Voice",
    "fix",
    "given",
    "on_path_fix",
    "option",
    "registry_fix",
    "resolve_fix",
    "say",
]


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


def say(voice: Voice, python: str, cli: str, http: str) -> str:
    """The text for `voice`, one of three."""
    if voice is Voice.CLI:
        return cli
    if voice is Voice.HTTP:
        return http
    return python


def given(text: str, voice: Voice) -> str:
    """What the caller passed as the target, as they passed it."""
    quoted = text.replace("\\", "\\\\").replace('"', '\\"')
    return say(voice, f"to={text!r}", f"--to {text!r}", f'"to": "{quoted}"')


def option(voice: Voice, name: str, value: str) -> str:
    """A rollback policy set to `value` (`name` as in Python: `on_conflict`)."""
    flag = "--" + name.replace("_", "-")
    return say(voice, f"{name}={value!r}", f"{flag} {value}", f'"{name}": "{value}"')


def resolve_fix(voice: Voice, effect_id: str, phase: str) -> str:
    """How to record what happened to an effect whose outcome is unknown.

    Args:
        phase: "call" (a forward call was cut off) or "inverse" (an inverse was).
    """
    if voice is Voice.PYTHON:
        keyword = "applied" if phase == "call" else "compensated"
        return f"saver.resolve_effect(config, {effect_id!r}, {keyword}=True|False)"
    flags = "--applied|--not-applied" if phase == "call" else "--compensated"
    if phase != "call":
        flags += "|--not-compensated"
    return f"`langgraph-rollback resolve DB --thread T {effect_id} {flags}`"


def registry_fix(voice: Voice) -> str:
    """How to make a tool's declaration known to the rollback."""
    return say(
        voice,
        "import the module that declares it (or pass its registry=)",
        "point --graph at a module that declares it (importing the module "
        "--graph names declares its tools)",
        "import the module that declares it in the server's graph module",
    )


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
