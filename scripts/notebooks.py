"""Execute the notebooks and save them with their outputs: `make notebooks`.

Each notebook runs offline, top to bottom, in a fresh kernel whose temporary
files land in one scratch directory. Before it is saved, what changes from
run to run is made stable, so a rerun that changes nothing leaves no diff:
ids (UUIDs, checkpoint and effect ids) become `00000000-0000-0000-0000-00000000000N`
in order of appearance, long hex digests (git commits, hashes) likewise,
timestamps become 2025-01-01 00:00:00, durations 0.00 s, the process
owning a call `host|pid`, the scratch
directory `/tmp/notebook` (and the random names of what the notebook makes
in it, numbered; a message that cuts such a name short keeps none of its
random part), object addresses 0x0. The order of effects is not
scrubbed: a notebook whose model asks for several tool calls in one turn
compiles its graph with `max_concurrency=1`, so the `ToolNode` runs them one
after another in the model's order (in parallel threads they would be
numbered, `seq`, in whatever order they started). The tests execute the
notebooks again (tests/docs/test_notebooks.py) and never compare outputs.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
UUID = re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b")
HEX = re.compile(r"\b(?=[0-9a-f]*[a-f])[0-9a-f]{12,64}\b")  # with a letter
STAMP = re.compile(
    r"\b\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:[+-]\d{2}:\d{2}|Z)?"
)
SECONDS = re.compile(r"\b\d+\.\d+ s\b")
ADDRESS = re.compile(r"\b0x[0-9a-f]{6,16}\b")
DATETIME = re.compile(r"datetime\.datetime\(\d[^()]*(?:\([^()]*\))?[^()]*\)")
OWNER = re.compile(r"owner='[^']*'")


class Scrubber:
    """Stable stand-ins for the volatile values of one notebook."""

    def __init__(self, scratch: str) -> None:
        self.scratch = scratch
        self.made = re.compile(re.escape(scratch) + r"/([^/\s'\"<>]+)")
        self.names: dict[str, str] = {}
        self.ids: dict[str, str] = {}
        self.digests: dict[str, str] = {}

    def learn(self, value: Any) -> None:
        """Note the random names of what the notebook made in the scratch dir."""
        for name in self.made.findall(json.dumps(value)):
            stem = re.sub(r"[a-z0-9_]{8}$", "", name)
            if stem != name and name not in self.names:
                self.names[name] = f"{stem}{len(self.names) + 1:08d}"

    def text(self, value: str) -> str:
        for name, stable in self.names.items():
            value = value.replace(name, stable)
            # A message that cuts the path short (`repo-k_...`) may keep the
            # start of the random part, as much as reaches its last separator.
            stem, random = name[:-8], name[-8:]
            for length in range(7, 0, -1):
                cut = f"{self.scratch}/{stem}{random[:length]}..."
                value = value.replace(cut, f"{self.scratch}/{stem}...")
        value = value.replace(self.scratch, "/tmp/notebook")
        value = UUID.sub(lambda m: self._stand_in(m.group(0), self.ids, 36), value)
        value = HEX.sub(lambda m: self._stand_in(m.group(0), self.digests, 0), value)
        value = STAMP.sub(_stamp, value)
        value = DATETIME.sub("datetime.datetime(2025, 1, 1, 0, 0)", value)
        value = OWNER.sub("owner='host|pid'", value)
        value = SECONDS.sub("0.00 s", value)
        return ADDRESS.sub("0x0", value)

    def _stand_in(self, found: str, seen: dict[str, str], width: int) -> str:
        if found not in seen:
            number = str(len(seen) + 1)
            if width:  # a UUID: keep its shape, so tables stay aligned
                seen[found] = "00000000-0000-0000-0000-" + number.zfill(12)
            else:
                seen[found] = number.zfill(len(found))
        return seen[found]

    def value(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, list):
            return [self.value(v) for v in value]
        if isinstance(value, dict):
            return {k: self.value(v) for k, v in value.items()}
        return value


def _stamp(match: re.Match[str]) -> str:
    found = match.group(0)
    return "2025-01-01" + found[10] + "00:00:00" + ("+00:00" if "+" in found else "")


def run(path: Path, scratch: Path) -> None:
    """Execute `path` in place and save it with scrubbed outputs."""
    notebook = nbformat.read(path, as_version=4)
    NotebookClient(
        notebook,
        timeout=180,
        kernel_name="python3",
        record_timing=False,
        resources={"metadata": {"path": str(path.parent)}},
    ).execute()
    scrub = Scrubber(str(scratch))
    for cell in notebook.cells:
        if cell.cell_type == "code":
            scrub.learn(cell.outputs)
    for cell in notebook.cells:
        if cell.cell_type == "code":
            cell.outputs = [nbformat.from_dict(scrub.value(o)) for o in cell.outputs]
        cell.metadata.pop("execution", None)
    notebook.metadata.pop("widgets", None)
    nbformat.write(notebook, path)


def main(argv: list[str]) -> int:
    paths = [Path(a) for a in argv] or sorted((ROOT / "notebooks").glob("*.ipynb"))
    # One fixed scratch directory, so what a message cuts short reads the same
    # on every run.
    scratch = Path(tempfile.gettempdir()).resolve() / "lgrb-notebook"
    for path in paths:
        shutil.rmtree(scratch, ignore_errors=True)
        scratch.mkdir()
        os.environ["TMPDIR"] = str(scratch)  # the kernel inherits it
        try:
            run(path, scratch)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        print(f"{path.name}: executed, outputs saved")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
