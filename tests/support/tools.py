"""Declared tools acting on a `World`, built per test with their own registry."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from langchain_core.tools import BaseTool, tool

from langgraph_rollback import (
    Effect,
    ToolRegistry,
    current_effect,
    irreversible,
    reversible,
)
from tests.support.world import World


@dataclass
class Tools:
    write_file: Any
    """Plain sync function: write a file (reversible; observes the file)."""
    awrite_file: Any
    """Plain async function: write a file."""
    make_file: BaseTool
    """LangChain tool: create a file."""
    amake_file: BaseTool
    """LangChain tool with a coroutine: create a file."""
    flaky: BaseTool
    """LangChain tool that raises the first time it runs for a name."""
    send_email: BaseTool
    """Irreversible LangChain tool."""


def build_tools(world: World, registry: ToolRegistry) -> Tools:
    def read(name: str, **_: Any) -> str | None:
        path = world.path(name)
        return path.read_text() if path.exists() else None

    def undo_write(effect: Effect) -> str:
        world.log("inverse", effect.tool, name=effect.args["name"], effect=effect.id)
        path = world.path(effect.args["name"])
        if effect.before is None:
            path.unlink(missing_ok=True)
            return f"deleted {effect.args['name']}"
        path.write_text(effect.before)
        return f"restored {effect.args['name']}"

    @reversible(undo=undo_write, observe=read, registry=registry)
    def write_file(name: str, content: str) -> str:
        """Write `content` to the file `name`."""
        effect = current_effect()
        world.log(
            "forward",
            "write_file",
            name=name,
            key=effect.idempotency_key if effect else None,
        )
        world.path(name).write_text(content)
        return f"wrote {name}"

    @reversible(undo=undo_write, observe=read, registry=registry)
    async def awrite_file(name: str, content: str) -> str:
        """Write `content` to the file `name` (async)."""
        world.log("forward", "awrite_file", name=name)
        world.path(name).write_text(content)
        return f"wrote {name}"

    def undo_make(effect: Effect) -> str:
        world.log("inverse", effect.tool, name=effect.args["name"], effect=effect.id)
        world.path(effect.args["name"]).unlink(missing_ok=True)
        return f"deleted {effect.args['name']}"

    @reversible(undo=undo_make, registry=registry)
    @tool
    def make_file(name: str) -> str:
        """Create the file `name`."""
        world.log("forward", "make_file", name=name)
        world.path(name).write_text("made")
        return f"made {name}"

    async def _amake(name: str) -> str:
        world.log("forward", "amake_file", name=name)
        world.path(name).write_text("made")
        return f"made {name}"

    @reversible(undo=undo_make, registry=registry)
    @tool
    async def amake_file(name: str) -> str:
        """Create the file `name` (async)."""
        return await _amake(name)

    @reversible(undo=undo_make, registry=registry)
    @tool
    def flaky(name: str) -> str:
        """Create the file `name`; fails the first time."""
        world.log("forward", "flaky", name=name)
        if world.flag(f"flaky-{name}"):
            raise ConnectionError(f"flaky service failed for {name}")
        world.path(name).write_text("flaky")
        return f"flaky made {name}"

    @irreversible(reason="e-mail cannot be unsent", registry=registry)
    @tool
    def send_email(to: str, body: str) -> str:
        """Send an e-mail."""
        world.log("forward", "send_email", to=to)
        return f"sent to {to}"

    return Tools(
        write_file=write_file,
        awrite_file=awrite_file,
        make_file=make_file,
        amake_file=amake_file,
        flaky=flaky,
        send_email=send_email,
    )
