"""A declared tool importable by name, for calls made in a process pool.

A `ProcessPoolExecutor` pickles the function by its module and name, so the
tool lives at module level; it acts on the `World` whose directory it is
given and logs the process that performed it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from langgraph_rollback import ToolRegistry, reversible
from tests.support.world import World

REGISTRY = ToolRegistry()


def _unstamp(effect: Any) -> None:
    World(Path(effect.args["world_dir"])).log("inverse", "stamp", effect=effect.id)


@reversible(undo=_unstamp, registry=REGISTRY)
def stamp(world_dir: str, name: str) -> str:
    """Stamp `name` in the world at `world_dir`."""
    World(Path(world_dir)).log("forward", "stamp", name=name, pid=os.getpid())
    return f"stamped {name}"
