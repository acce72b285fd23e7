"""`python -m benchmarks.compare`: two bench results, figure by figure."""

from __future__ import annotations

import copy
import json
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from benchmarks.compare import compare, table

ROOT = Path(__file__).resolve().parents[2]
LATEST = ROOT / "benchmarks" / "results" / "latest.json"


@pytest.fixture
def result() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(LATEST.read_text())
    return data


def _row(rows: list[Any], section: str, figure: str) -> Any:
    (found,) = [r for r in rows if r.section == section and r.figure == figure]
    return found


def test_a_run_against_itself_is_no_worse(result: dict[str, Any]) -> None:
    rows = compare(result, copy.deepcopy(result))
    assert rows
    assert not [r for r in rows if r.worse]
    ratios = [r for r in rows if r.figure.endswith("ours/upstream")]
    assert len([r for r in ratios if r.section == "agent"]) == len(
        result["agent"]["runs"]
    )
    assert table(rows).endswith(f"{len(rows)} figures, 0 worse")


def test_each_figure_is_judged_in_its_own_direction(result: dict[str, Any]) -> None:
    new = copy.deepcopy(result)
    new["recording"]["us_per_effect_sync"] *= 1.2  # time up: worse
    new["recording"]["us_per_effect_async"] *= 0.5  # time down: better
    undo = next(t for t in new["targets"] if "effects/s" in t["target"])
    undo["value"] *= 0.9  # effects per second down: worse
    rows = compare(result, new)
    assert _row(rows, "recording", "us_per_effect_sync").worse
    assert not _row(rows, "recording", "us_per_effect_async").worse
    assert _row(rows, "rollback", undo["target"]).worse
    assert [r.figure for r in rows if r.worse] == [
        undo["target"],
        "us_per_effect_sync",
    ]


def _set_pairs(run: dict[str, Any], pairs: list[float]) -> None:
    """Give a run these paired ours/upstream ratios (and their median)."""
    run["upstream"]["seconds"] = [1.0] * len(pairs)
    run["ours"]["seconds"] = list(pairs)
    run["ratio"] = statistics.median(pairs)


def test_agent_ratios_by_difference_with_their_noise(result: dict[str, Any]) -> None:
    old, new = copy.deepcopy(result), copy.deepcopy(result)
    run = old["agent"]["runs"][0]
    figure = f"{run['kind']} {run['durability']} {run['steps']} steps: ours/upstream"
    _set_pairs(run, [1.0] * 9)
    # Every pair 0.1 slower for ours: a change the run itself can tell.
    _set_pairs(new["agent"]["runs"][0], [1.1] * 9)
    row = _row(compare(old, new), "agent", figure)
    assert row.worse
    assert row.note == ""
    assert row.change == "+0.100 (90%: +0.100..+0.100)"
    assert not _row(compare(old, new, tolerance=0.11), "agent", figure).worse
    # The same median, 0.1 slower, from pairs this scattered: within noise.
    scattered = [0.5, 0.6, 0.7, 0.8, 1.1, 1.4, 1.5, 1.6, 1.7]
    _set_pairs(new["agent"]["runs"][0], scattered)
    row = _row(compare(old, new), "agent", figure)
    assert row.worse
    assert row.note == "within noise"
    assert row.verdict() == "worse (within noise)"
    # Faster is never worse.
    _set_pairs(new["agent"]["runs"][0], [0.9] * 9)
    assert not _row(compare(old, new), "agent", figure).worse


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "benchmarks.compare", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_cli_exit_status_says_whether_anything_is_worse(
    result: dict[str, Any], tmp_path: Path
) -> None:
    same = _cli(str(LATEST), str(LATEST))
    assert same.returncode == 0, same.stderr
    assert "| section | figure | old | new | change | verdict |" in same.stdout
    result["recording"]["us_per_effect_sync"] *= 2
    slower = tmp_path / "slower.json"
    slower.write_text(json.dumps(result))
    worse = _cli(str(LATEST), str(slower))
    assert worse.returncode == 1
    assert "| recording | us_per_effect_sync |" in worse.stdout
    assert "+100.0% | worse |" in worse.stdout


def test_cli_names_a_file_that_is_not_a_result(tmp_path: Path) -> None:
    bad = tmp_path / "notes.txt"
    bad.write_text("not json")
    proc = _cli(str(LATEST), str(bad))
    assert proc.returncode == 2
    assert str(bad) in proc.stderr
    assert "not a benchmark result" in proc.stderr
    other = tmp_path / "other.json"
    other.write_text("[1, 2]")
    proc = _cli(str(other), str(LATEST))
    assert proc.returncode == 2
    assert "latest.json of a run" in proc.stderr


def test_what_cannot_be_compared_is_listed_not_judged(result: dict[str, Any]) -> None:
    new = copy.deepcopy(result)
    new["recording"]["us_per_effect_sync"] = float("nan")
    new["recording"]["us_per_effect_async"] = True
    dropped = new["agent"]["runs"].pop()
    skipped: list[str] = []
    rows = compare(result, new, skipped=skipped)
    figures = {r.figure for r in rows}
    assert "us_per_effect_sync" not in figures
    assert "us_per_effect_async" not in figures
    name = f"{dropped['kind']} {dropped['durability']} {dropped['steps']}"
    assert f"agent run {name}: only in the old run" in skipped
    assert any(s.startswith("recording us_per_effect_sync: ") for s in skipped)
    assert "Not compared (" in table(rows, skipped)


def test_near_one_targets_by_their_factor_and_missed_targets(
    result: dict[str, Any],
) -> None:
    old, new = copy.deepcopy(result), copy.deepcopy(result)
    linear = next(t for t in old["targets"] if t["rule"] == "0.80-1.25x")
    other = next(t for t in new["targets"] if t["target"] == linear["target"])
    linear["value"], other["value"] = 1.25, 0.7  # 1/0.7 is further than 1.25
    reads = next(t for t in new["targets"] if t["section"] == "reads" and t["pass"])
    reads["pass"] = False  # the same value, but the target is now missed
    rows = compare(old, new)
    assert _row(rows, linear["section"], linear["target"]).worse
    missed = _row(rows, "reads", reads["target"])
    assert missed.worse
    assert missed.verdict() == "worse (target now missed)"
    other["value"] = 1 / 1.25  # the same factor away: not worse
    assert not _row(compare(old, new), linear["section"], linear["target"]).worse


def test_bad_tolerances_and_mixed_sizes_are_refused(result: dict[str, Any]) -> None:
    for tolerance in (-0.05, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="tolerance"):
            compare(result, result, tolerance=tolerance)
    quick = copy.deepcopy(result)
    quick["meta"]["quick"] = True
    with pytest.raises(ValueError, match="--quick"):
        compare(result, quick)
    twice = copy.deepcopy(result)
    twice["agent"]["runs"].append(twice["agent"]["runs"][0])
    with pytest.raises(ValueError, match="twice"):
        compare(result, twice)
    proc = _cli(str(LATEST), str(LATEST), "--tolerance=-1")
    assert proc.returncode == 2
    assert "must be a finite number >= 0" in proc.stderr


def test_a_malformed_result_is_exit_2_not_a_traceback(
    result: dict[str, Any], tmp_path: Path
) -> None:
    result["agent"]["runs"][0]["ours"]["seconds"] = [1.0]
    del result["agent"]["runs"][1]["kind"]
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps(result))
    proc = _cli(str(LATEST), str(broken))
    assert proc.returncode == 2
    assert "lacks a field every run has" in proc.stderr
    assert "Traceback" not in proc.stderr
