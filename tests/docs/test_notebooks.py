"""Every notebook in notebooks/ runs offline, top to bottom, on every test run."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

pytestmark = pytest.mark.slow

NOTEBOOKS = sorted((Path(__file__).resolve().parents[2] / "notebooks").glob("*.ipynb"))


def test_there_are_notebooks() -> None:
    names = [p.name for p in NOTEBOOKS]
    assert "01_quickstart.ipynb" in names
    assert "02_replan_after_failure.ipynb" in names
    assert "03_files_and_git.ipynb" in names
    assert "04_human_approval.ipynb" in names


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs(
    path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The kernel inherits TMPDIR: the notebooks' temporary workspaces land in
    # this test's directory, which pytest cleans up.
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    notebook = nbformat.read(path, as_version=4)
    client = NotebookClient(
        notebook,
        timeout=180,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}},
    )
    client.execute()
    errors = [
        output
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
        if output.get("output_type") == "error"
    ]
    assert errors == []
    # Every notebook shows the thread as a picture, and a report as text.
    outputs = [
        output
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
    ]
    assert any("image/svg+xml" in o.get("data", {}) for o in outputs), path.name
    text = "".join(
        o.get("text", "") + o.get("data", {}).get("text/plain", "") for o in outputs
    )
    assert "Rolled back thread" in text or "[rollback report]" in text, path.name
