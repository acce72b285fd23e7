"""Reversible file tools for a workspace directory.

```python
from langgraph_rollback.batteries.files import file_tools

tools = file_tools("workspace")          # write_file, append_file, delete_file,
node = ToolNode(tools)                   # move_file, make_directory
```

Each tool observes its target before and after the call: the observation is
the file's bytes (a before-image, identified by its SHA-256), or that it is
missing, or a directory. A rollback restores the before-image, and refuses
(as a conflict) when the file changed since the agent touched it. Images past
`max_image_bytes` (10 MiB by default) are refused before the call, with
`BeforeImageTooLargeError`. Paths are relative to the workspace; one that
escapes it is refused with `InvalidConfigError`.

The tools keep the workspace's absolute path in their observations, so a
rollback in another process finds the files without the original objects.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path
from typing import Any

from langchain_core.tools import BaseTool, StructuredTool

from langgraph_rollback._declare import reversible
from langgraph_rollback._errors import InvalidConfigError, RollbackError
from langgraph_rollback._models import Effect
from langgraph_rollback.core.registry import ToolRegistry

__all__ = ["BeforeImageTooLargeError", "file_tools", "image", "restore_image"]

DEFAULT_MAX_IMAGE_BYTES = 10 * 1024 * 1024


class BeforeImageTooLargeError(RollbackError):
    """A file is too large to keep its before-image in the ledger.

    Attributes:
        path: The file.
        size: Its size in bytes.
        limit: The cap.
    """

    def __init__(self, *, path: str, size: int, limit: int) -> None:
        super().__init__(
            f"{path} is {size} bytes, over the {limit}-byte cap for before-images "
            "kept in the ledger, so the change could not be undone. Fix: pass "
            "file_tools(..., max_image_bytes=...) a larger cap, or keep large "
            "files out of the agent's reach (e.g. snapshot them with the git battery)."
        )
        self.path = path
        self.size = size
        self.limit = limit


def _resolve(root: Path, path: str) -> Path:
    target = (root / path).resolve()
    if target != root and root not in target.parents:
        raise InvalidConfigError(
            f"Path {path!r} leaves the workspace {root}. Fix: use a path inside it."
        )
    return target


def image(target: Path, limit: int) -> dict[str, Any]:
    """What is at `target` now: a file's bytes and hash, a directory, or nothing."""
    if target.is_dir():
        return {"path": str(target), "kind": "dir"}
    if not target.exists():
        return {"path": str(target), "kind": "missing"}
    size = target.stat().st_size
    if size > limit:
        raise BeforeImageTooLargeError(path=str(target), size=size, limit=limit)
    data = target.read_bytes()
    return {
        "path": str(target),
        "kind": "file",
        "sha256": hashlib.sha256(data).hexdigest(),
        "content": data,
        "mode": target.stat().st_mode & 0o777,
    }


def restore_image(before: dict[str, Any]) -> str:
    """Put `before` back at its path."""
    target = Path(before["path"])
    if before["kind"] == "missing":
        if target.is_dir():
            target.rmdir()  # only when empty: anything else was not ours
        elif target.exists():
            target.unlink()
        return f"removed {target.name}"
    if before["kind"] == "dir":
        target.mkdir(parents=True, exist_ok=True)
        return f"restored directory {target.name}"
    content: bytes = before["content"]
    if hashlib.sha256(content).hexdigest() != before["sha256"]:
        raise RollbackError(
            f"The before-image of {target} does not match its hash; refusing to "
            "write it. Fix: inspect the ledger row; it was altered."
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(content)
    os.chmod(target, before.get("mode", 0o644))
    return f"restored {target.name}"


def restore_file(effect: Effect) -> str:
    return restore_image(effect.before)


def restore_moved_files(effect: Effect) -> str:
    # Restore the destination first (it may have held something), then the source.
    restore_image(effect.before["destination"])
    restore_image(effect.before["source"])
    return f"moved {Path(effect.before['destination']['path']).name} back"


def file_tools(
    root: str | os.PathLike[str],
    *,
    max_image_bytes: int = DEFAULT_MAX_IMAGE_BYTES,
    registry: ToolRegistry | None = None,
) -> list[BaseTool]:
    """The five file tools, working inside `root` (created if missing).

    Args:
        root: The workspace directory.
        max_image_bytes: The largest before-image kept in the ledger.
        registry: Where the tools are declared (the default registry
            otherwise). One workspace per registry: tools of a second
            workspace in the same registry raise `DuplicateToolError` (give
            each its own `ToolRegistry`); calling again for the same
            workspace redeclares them.
    """
    base = Path(root).resolve()
    base.mkdir(parents=True, exist_ok=True)

    def observe_one(path: str, **_: Any) -> dict[str, Any]:
        return image(_resolve(base, path), max_image_bytes)

    def observe_move(source: str, destination: str) -> dict[str, Any]:
        return {
            "source": image(_resolve(base, source), max_image_bytes),
            "destination": image(_resolve(base, destination), max_image_bytes),
        }

    def write_file(path: str, content: str) -> str:
        """Write `content` to the file at `path`, replacing what was there."""
        target = _resolve(base, path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content)
        return f"wrote {len(content)} characters to {path}"

    def append_file(path: str, content: str) -> str:
        """Append `content` to the file at `path` (created if missing)."""
        target = _resolve(base, path)
        target.parent.mkdir(parents=True, exist_ok=True)
        with target.open("a") as fh:
            fh.write(content)
        return f"appended {len(content)} characters to {path}"

    def delete_file(path: str) -> str:
        """Delete the file at `path`."""
        _resolve(base, path).unlink()
        return f"deleted {path}"

    def move_file(source: str, destination: str) -> str:
        """Move the file at `source` to `destination`, replacing what was there."""
        target = _resolve(base, destination)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(_resolve(base, source)), str(target))
        return f"moved {source} to {destination}"

    def make_directory(path: str) -> str:
        """Create the directory `path` (and its parents)."""
        _resolve(base, path).mkdir(parents=True, exist_ok=True)
        return f"created directory {path}"

    def declare(fn: Any, undo: Any, observe: Any) -> BaseTool:
        # The workspace is part of the tool's identity: another workspace in
        # the same registry is a different tool under the same name.
        fn.__qualname__ = f"file_tools[{base}].{fn.__name__}"
        lc_tool = StructuredTool.from_function(fn)
        declared: BaseTool = reversible(undo=undo, observe=observe, registry=registry)(
            lc_tool
        )
        return declared

    return [
        declare(write_file, restore_file, observe_one),
        declare(append_file, restore_file, observe_one),
        declare(delete_file, restore_file, observe_one),
        declare(move_file, restore_moved_files, observe_move),
        declare(make_directory, restore_file, observe_one),
    ]
