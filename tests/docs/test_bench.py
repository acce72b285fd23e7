"""The benchmark suite's quick mode: it runs, and reports every section sanely.

Only that the numbers are there and plausible, not that targets are met (a
smoke run's sizes are far too small for that); `make bench` measures.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
SECTIONS = ("agent", "recording", "rollback", "planning", "reads")


def _positive(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value) and value > 0


def _ratio(value: Any) -> bool:
    return _positive(value) and 0.05 < value < 20


@pytest.mark.timeout(600)
def test_quick_bench_reports_every_section(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(ROOT), env.get("PYTHONPATH")) if p
    )
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.run", "--quick", "--out", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=580,  # about 6 s idle; a loaded machine is slower, not wrong
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "Targets" in proc.stdout
    data = json.loads(out.read_text())
    for section in (*SECTIONS, "targets", "meta"):
        assert section in data, section
    kinds = data["meta"]["kinds"]
    assert {"memory", "sqlite", "aio_sqlite"} <= set(kinds)
    assert _positive(data["meta"]["seconds"])

    runs = data["agent"]["runs"]
    assert {(r["kind"], r["durability"]) for r in runs} == {
        (k, d) for k in kinds for d in ("sync", "async")
    }
    for r in runs:
        for variant in ("upstream", "ours"):
            assert _positive(r[variant]["per_step_ms"])
            assert _positive(r[variant]["steps_per_s"])
        assert r["ours"]["effects"] == r["steps"]
        assert r["upstream"]["effects"] is None
        assert _ratio(r["ratio"])
        if r["kind"] != "memory":
            assert _positive(r["ours"]["db_bytes"])
            assert _positive(r["ours"]["ledger_bytes_per_effect"])
    assert data["agent"]["rss"]
    for r in data["agent"]["rss"]:
        for variant in ("upstream", "ours"):
            assert r[variant]["peak_rss_mb"] > 10

    rec = data["recording"]
    for key in (
        "us_per_commit_floor_full",
        "us_per_commit_floor_normal",
        "us_per_effect_sync",
        "us_per_effect_async",
    ):
        assert _positive(rec[key]), key
    assert 1 <= rec["commits_per_effect_sync"] <= 10
    assert 1 <= rec["commits_per_effect_async"] <= 10
    assert rec["saver_sqlite_settings"]["journal_mode"] == "WAL"

    rb = data["rollback"]
    for key in ("short_small", "long_small", "short_large"):
        assert _positive(rb[key]["effects_per_s"])
        assert rb[key]["effects"] > 0
    assert _ratio(rb["history_ratio"])
    assert _ratio(rb["linearity"])

    plan = data["planning"]
    for key in ("small", "large"):
        assert _positive(plan[key]["plan_ms"])
        assert _positive(plan[key]["plan_peak_kib"])
        assert _positive(plan[key]["first_page_ms"])
    assert plan["large"]["ledger_rows"] > plan["small"]["ledger_rows"]

    reads = data["reads"]["results"]
    assert {(r["kind"], r["op"]) for r in reads} == {
        (k, op)
        for k in kinds
        for op in ("get_tuple_latest", "get_tuple_by_id", "list_all")
    }
    for r in reads:
        assert _positive(r["upstream"]) and _positive(r["ours"])
        assert _ratio(r["ratio"])

    assert data["targets"]
    for target in data["targets"]:
        assert isinstance(target["pass"], bool)
        assert math.isfinite(target["value"])
