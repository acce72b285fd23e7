"""An outside world for tests: real files, and a log of every call made to it.

The log is a real file each forward call and each inverse appends a JSON line
to, so counts come from the world itself, never from the ledger or a mock.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any


class World:
    """A directory of files plus an append-only call log."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.files = root / "files"
        self.files.mkdir(parents=True, exist_ok=True)
        self.log_path = root / "calls.log"
        self._lock = threading.Lock()

    def log(self, kind: str, tool: str, **data: Any) -> None:
        line = json.dumps({"kind": kind, "tool": tool, **data}, sort_keys=True)
        with self._lock, self.log_path.open("a", encoding="utf-8") as fh:
            fh.write(line + "\n")

    def calls(
        self, kind: str | None = None, tool: str | None = None
    ) -> list[dict[str, Any]]:
        if not self.log_path.exists():
            return []
        entries = [json.loads(x) for x in self.log_path.read_text().splitlines() if x]
        return [
            e
            for e in entries
            if (kind is None or e["kind"] == kind)
            and (tool is None or e["tool"] == tool)
        ]

    def count(self, kind: str = "forward", tool: str | None = None) -> int:
        return len(self.calls(kind, tool))

    def path(self, name: str) -> Path:
        return self.files / name

    def listing(self) -> dict[str, str]:
        return {
            str(p.relative_to(self.files)): p.read_text()
            for p in sorted(self.files.rglob("*"))
            if p.is_file()
        }

    def flag(self, name: str) -> bool:
        """True the first time a flag is taken (a one-shot switch on disk)."""
        marker = self.root / f"flag-{name}"
        if marker.exists():
            return False
        marker.write_text("taken")
        return True
