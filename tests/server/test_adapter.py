"""The Agent Server's own adapter class in front of our saver, without a server."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_a_graph_compiled_with_the_servers_adapter_records_and_rolls_back(
    tmp_path: Path,
) -> None:
    world = tmp_path / "world"
    world.mkdir()
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.support.adapter_run",
            str(tmp_path / "db"),
            str(world),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    found = json.loads(out.stdout.splitlines()[-1])
    assert found["adapter"] == (
        "langgraph_api._checkpointer._adapter._CustomCheckpointerAdapter"
    )
    assert found["effects"] == [["write_file", "applied"]]
    # The call ran once across the interrupt and the resume, and was undone.
    assert (world / "calls.log").read_text().splitlines() == [str(world / "a.txt")]
    assert found["report"] == "completed"
    assert not (world / "a.txt").exists()
