"""Compare two `make bench` results: is the new one worse than the old?

```sh
python -m benchmarks.compare OLD.json NEW.json [--tolerance 0.05]
```

Both files are `benchmarks/results/latest.json` of a run (say of the last
release and of a change). Each figure below that both runs have is printed
as a Markdown row: old, new, the change and a verdict; what only one run
has, or has as no positive finite number, is listed under the table.

- Agent-loop ratios (ours/upstream) are compared by their difference, which
  is worse when it exceeds `--tolerance`. Beside it is a 90% bootstrap
  interval of that difference, resampled from each run's paired
  ours/upstream timings: when the interval reaches back under the
  tolerance, the run cannot tell the change from noise (the verdict then
  says so).
- The targets' other figures, recording and rollback times, planning times
  and memory, ledger bytes per effect and peak RSS are compared by their
  relative change, in the direction that is worse for each: time, bytes and
  memory up, effects per second down, a ratio that should stay near 1.0 (a
  `0.80-1.25x` rule) moving away from it by its factor. A target the old
  run met and the new one misses is worse whatever the change.

Runs of different sizes (one `--quick`, one not) are refused, and so is a
file that is not a result. The exit status is 1 when some row is worse, 2
for bad input, else 0.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import statistics
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

__all__ = ["Row", "compare", "main", "table"]

Better = Literal["lower", "higher", "near_one"]
RunKey = tuple[str, str, int]

RESAMPLES = 4000


@dataclass(frozen=True)
class Row:
    """One figure of both runs, and whether the new one is worse."""

    section: str
    figure: str
    old: float
    new: float
    change: str
    worse: bool
    note: str = ""

    def verdict(self) -> str:
        if not self.worse:
            return "ok"
        return f"worse ({self.note})" if self.note else "worse"


def _number(value: Any) -> bool:
    """A positive finite number (not a bool): what a figure must be."""
    return (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value > 0
    )


class _Compare:
    """One comparison: its tolerance, and what it could not compare."""

    def __init__(self, tolerance: float) -> None:
        self.tolerance = tolerance
        self.skipped: list[str] = []

    def relative(
        self, section: str, figure: str, old: Any, new: Any, better: Better
    ) -> Row | None:
        if old is None and new is None:
            return None
        if not _number(old) or not _number(new):
            self.skipped.append(f"{section} {figure}: {old!r} -> {new!r}")
            return None
        ratio = new / old
        if better == "lower":
            worse = ratio > 1 + self.tolerance
        elif better == "higher":
            worse = ratio < 1 - self.tolerance
        else:  # a factor away from 1.0, either way
            worse = abs(math.log(new)) > abs(math.log(old)) + math.log1p(self.tolerance)
        return Row(section, figure, old, new, f"{(ratio - 1) * 100:+.1f}%", worse)

    def only_in_one(self, label: str, old: set[Any], new: set[Any]) -> None:
        for key in sorted(old ^ new, key=str):
            where = "old" if key in old else "new"
            name = " ".join(map(str, key)) if isinstance(key, tuple) else key
            self.skipped.append(f"{label} {name}: only in the {where} run")

    def agent(self, old: dict[str, Any], new: dict[str, Any]) -> Iterator[Row]:
        old_runs = _by_key(old["agent"]["runs"])
        new_runs = _by_key(new["agent"]["runs"])
        self.only_in_one("agent run", set(old_runs), set(new_runs))
        for seed, (key, run) in enumerate(old_runs.items()):
            other = new_runs.get(key)
            if other is not None:
                yield from self._agent_run(key, run, other, seed)

    def _agent_run(
        self, key: RunKey, run: dict[str, Any], other: dict[str, Any], seed: int
    ) -> Iterator[Row]:
        name = f"{key[0]} {key[1]} {key[2]} steps"
        old_ratio: Any = run.get("ratio")
        new_ratio: Any = other.get("ratio")
        if not _number(old_ratio) or not _number(new_ratio):
            self.skipped.append(f"agent {name}: ratio {old_ratio!r} -> {new_ratio!r}")
        else:
            diff = new_ratio - old_ratio
            change, note = f"{diff:+.3f}", ""
            pairs_old, pairs_new = _pairs(run), _pairs(other)
            if pairs_old and pairs_new:
                low, high = _interval(pairs_old, pairs_new, seed)
                change += f" (90%: {low:+.3f}..{high:+.3f})"
                if low <= self.tolerance:
                    note = "within noise"
            worse = diff > self.tolerance
            figure = f"{name}: ours/upstream"
            yield Row("agent", figure, old_ratio, new_ratio, change, worse, note)
        row = self.relative(
            "agent",
            f"{name}: ledger bytes per effect",
            _get(run, ("ours", "ledger_bytes_per_effect")),
            _get(other, ("ours", "ledger_bytes_per_effect")),
            "lower",
        )
        if row is not None:
            yield row

    def targets(self, old: dict[str, Any], new: dict[str, Any]) -> Iterator[Row]:
        old_targets = {t["target"]: t for t in old.get("targets") or []}
        new_targets = {t["target"]: t for t in new.get("targets") or []}
        self.only_in_one("target", set(old_targets), set(new_targets))
        for name, target in old_targets.items():
            other = new_targets.get(name)
            if target["section"] == "agent" or other is None:
                continue
            better = _better(str(target.get("rule", "")))
            row = self.relative(
                target["section"], name, target.get("value"), other.get("value"), better
            )
            if row is None:
                continue
            if target.get("pass") is True and other.get("pass") is False:
                row = replace(row, worse=True, note="target now missed")
            yield row

    def figures(self, old: dict[str, Any], new: dict[str, Any]) -> Iterator[Row]:
        """Figures no target names: times, sizes and memory, lower is better."""
        for section, figure, path in _FIGURES:
            row = self.relative(
                section, figure, _get(old, path), _get(new, path), "lower"
            )
            if row is not None:
                yield row
        old_rss = _by_key(old["agent"].get("rss") or [])
        new_rss = _by_key(new["agent"].get("rss") or [])
        for key, rss in old_rss.items():
            other = new_rss.get(key)
            if other is None:
                continue
            row = self.relative(
                "agent",
                f"{key[0]} {key[1]} {key[2]} steps: ours peak RSS MB",
                _get(rss, ("ours", "peak_rss_mb")),
                _get(other, ("ours", "peak_rss_mb")),
                "lower",
            )
            if row is not None:
                yield row


def _figure_paths() -> list[tuple[str, str, tuple[str, ...]]]:
    paths: list[tuple[str, str, tuple[str, ...]]] = [
        ("recording", figure, ("recording", figure))
        for figure in ("us_per_effect_sync", "us_per_effect_async")
    ]
    for case in ("short_small", "long_small", "short_large"):
        for figure in ("us_per_effect", "plan_ms"):
            paths.append(("rollback", f"{case} {figure}", ("rollback", case, figure)))
    for size in ("small", "large"):
        # The large thread's plan_ms is a target's value already.
        named = ("first_page_ms", "plan_peak_kib")
        for figure in ("plan_ms", *named) if size == "small" else named:
            paths.append(("planning", f"{size} {figure}", ("planning", size, figure)))
    return paths


_FIGURES = _figure_paths()


def _by_key(runs: Any) -> dict[RunKey, dict[str, Any]]:
    """Runs by (kind, durability, steps); a run given twice is refused."""
    found: dict[RunKey, dict[str, Any]] = {}
    for run in runs:
        key = (run["kind"], run.get("durability", "sync"), run["steps"])
        if key in found:
            raise ValueError(
                f"the run {' '.join(map(str, key))} is there twice: a result "
                "has one run per kind, durability and steps"
            )
        found[key] = run
    return found


def _pairs(run: dict[str, Any]) -> list[float]:
    """The run's paired ours/upstream ratios ([] when they cannot be paired)."""
    ours = _get(run, ("ours", "seconds"))
    upstream = _get(run, ("upstream", "seconds"))
    if not isinstance(ours, list) or not isinstance(upstream, list):
        return []
    if len(ours) != len(upstream) or not all(map(_number, [*ours, *upstream])):
        return []
    return [o / u for o, u in zip(ours, upstream, strict=True)]


def _interval(old: list[float], new: list[float], seed: int) -> tuple[float, float]:
    """A 90% bootstrap interval of median(new) - median(old)."""
    rng = random.Random(seed)
    diffs = sorted(
        statistics.median(rng.choices(new, k=len(new)))
        - statistics.median(rng.choices(old, k=len(old)))
        for _ in range(RESAMPLES)
    )
    return diffs[int(0.05 * RESAMPLES)], diffs[int(0.95 * RESAMPLES) - 1]


def _better(rule: str) -> Better:
    """Which way a target's rule (`<= 1.10x`, `>= 1,000/s`, `0.80-1.25x`) wants."""
    if rule.startswith(">"):
        return "higher"
    if rule[:1].isdigit() and "-" in rule:
        return "near_one"
    return "lower"


def _get(data: Any, path: Sequence[str]) -> Any:
    for key in path:
        if not isinstance(data, dict) or key not in data:
            return None
        data = data[key]
    return data


def compare(
    old: dict[str, Any],
    new: dict[str, Any],
    *,
    tolerance: float = 0.05,
    skipped: list[str] | None = None,
) -> list[Row]:
    """The figures both results have, old against new; what could not be
    compared is appended to `skipped`.

    Raises:
        ValueError: A bad tolerance, runs of different sizes, or a result
            without what every run has (its agent runs).
    """
    if not math.isfinite(tolerance) or tolerance < 0:
        raise ValueError(f"the tolerance must be a finite number >= 0, not {tolerance}")
    quick = [_get(d, ("meta", "quick")) for d in (old, new)]
    if quick[0] != quick[1]:
        raise ValueError(
            f"one run is --quick and one is not ({quick[0]!r}, {quick[1]!r}): "
            "their sizes differ, so their figures cannot be compared: compare two "
            "runs of `python -m benchmarks.run`, or two of `--quick`"
        )
    run = _Compare(tolerance)
    try:
        rows = [*run.agent(old, new), *run.targets(old, new), *run.figures(old, new)]
    except (KeyError, TypeError, AttributeError) as exc:
        raise ValueError(
            f"a result lacks a field every run has ({exc!r}): give the "
            "benchmarks/results/latest.json that benchmarks.run wrote, unedited"
        ) from exc
    if skipped is not None:
        skipped.extend(run.skipped)
    return rows


def _format(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 10_000 else f"{value:.4g}"


def table(rows: Sequence[Row], skipped: Sequence[str] = ()) -> str:
    """The rows as a Markdown table, a count of the worse ones, and what was
    not compared."""
    lines = [
        "| section | figure | old | new | change | verdict |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row.section} | {row.figure} | {_format(row.old)} "
            f"| {_format(row.new)} | {row.change} | {row.verdict()} |"
        )
    worse = [row for row in rows if row.worse]
    noise = [row for row in worse if row.note == "within noise"]
    lines.append("")
    lines.append(
        f"{len(rows)} figures, {len(worse)} worse"
        + (f" ({len(noise)} of them within noise)" if noise else "")
    )
    if skipped:
        lines.append("")
        lines.append(f"Not compared ({len(skipped)}):")
        lines.extend(f"- {item}" for item in skipped)
    return "\n".join(lines)


def _tolerance(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, not {text}")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.compare", description=__doc__.split("\n")[0]
    )
    parser.add_argument("old", type=Path, help="the earlier run's latest.json")
    parser.add_argument("new", type=Path, help="the later run's latest.json")
    parser.add_argument(
        "--tolerance",
        type=_tolerance,
        default=0.05,
        help="allowed change: agent ratios by difference, the rest relative "
        "(default 0.05)",
    )
    args = parser.parse_args(argv)
    loaded = []
    for path in (args.old, args.new):
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            parser.error(f"{path}: not a benchmark result ({exc})")
        if not isinstance(data, dict) or not isinstance(data.get("agent"), dict):
            parser.error(
                f"{path}: not a benchmark result, it has no agent section "
                "(give the benchmarks/results/latest.json of a run)"
            )
        loaded.append(data)
    skipped: list[str] = []
    try:
        rows = compare(loaded[0], loaded[1], tolerance=args.tolerance, skipped=skipped)
    except ValueError as exc:
        parser.error(f"{args.old} against {args.new}: {exc}")
    if not rows:
        parser.error(
            f"{args.old} and {args.new} have no figure in common: are both "
            "results of benchmarks.run?"
        )
    print(table(rows, skipped))
    return 1 if any(row.worse for row in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
