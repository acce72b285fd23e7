"""A thread as a picture: its checkpoints, the effects its tasks performed,
and what rollbacks undid.

```python
from langgraph_rollback.viz import timeline

timeline(saver, {"configurable": {"thread_id": "1"}})   # in Jupyter: an SVG
print(timeline(saver, config))                          # anywhere: text
```

Checkpoints of the root namespace run left to right, oldest first. Those on
the path from the head back to the first checkpoint (through the target of a
restored head) sit on the top lane;
checkpoints of abandoned branches (forks, and the runs a rollback left
behind) sit on the lane below. A restored head, the copy a rollback writes of
its target, is a diamond labelled with the checkpoint it copies. Each effect
hangs under the checkpoint its task started from, coloured by what is true of
it in the world now.

Building the picture reads the saver only (`list` and `list_effects`);
`timeline_of` draws from data already read, with no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from html import escape
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import CheckpointTuple

from langgraph_rollback._errors import InvalidConfigError
from langgraph_rollback._models import Effect, EffectStatus, Reversibility

__all__ = ["Timeline", "TimelineCheckpoint", "atimeline", "timeline", "timeline_of"]

# What an effect's status and kind mean for the world now: (label, fill, text).
_UNDONE = ("undone", "#e8eaed", "#5f6368")
_LIVE = ("in the world", "#d2e3fc", "#174ea6")
_STUCK = ("in the world, cannot be undone", "#fce8e6", "#a50e0e")
_FAILED_UNDO = ("inverse failed", "#f28b82", "#5c0707")
_OPEN = ("outcome unknown / in progress", "#feefc3", "#7a4f01")
_NEVER = ("not applied (raised, interrupted or blocked)", "#ffffff", "#80868b")
LEGEND = (_LIVE, _STUCK, _UNDONE, _FAILED_UNDO, _OPEN, _NEVER)


def _style(effect: Effect) -> tuple[str, str, str]:
    status = effect.status
    if status == EffectStatus.COMPENSATED:
        return _UNDONE
    if status == EffectStatus.COMPENSATION_FAILED:
        return _FAILED_UNDO
    if status in (EffectStatus.PENDING, EffectStatus.COMPENSATING):
        return _OPEN
    if status == EffectStatus.APPLIED:
        reversible = effect.kind in (
            Reversibility.REVERSIBLE,
            Reversibility.COMPENSABLE,
        )
        return _LIVE if reversible else _STUCK
    return _NEVER


@dataclass
class TimelineCheckpoint:
    """One root checkpoint as drawn."""

    checkpoint_id: str
    parent_id: str | None
    step: int | None
    source: str
    on_path: bool
    copy_of: str | None = None
    """For a rollback's restored head: the checkpoint it copies."""
    effects: list[Effect] = field(default_factory=list)
    """Effects whose task started from this checkpoint, oldest first."""


@dataclass
class Timeline:
    """A thread's checkpoints (oldest first) and effects, ready to draw.

    In Jupyter it displays as SVG (`_repr_svg_`); `str()` gives text;
    `to_svg()` returns the SVG document.
    """

    thread_id: str
    checkpoints: list[TimelineCheckpoint]
    head_id: str | None
    unplaced: list[Effect] = field(default_factory=list)
    """Effects whose checkpoints are all gone (deleted or never stored)."""

    def index(self, checkpoint_id: str | None) -> int | None:
        """The 1-based column of a checkpoint, as labelled in the picture."""
        for i, c in enumerate(self.checkpoints, start=1):
            if c.checkpoint_id == checkpoint_id:
                return i
        return None

    def __str__(self) -> str:
        lines = [f"Thread {self.thread_id!r}: {len(self.checkpoints)} checkpoint(s)"]
        for i, c in enumerate(self.checkpoints, start=1):
            marks = [] if c.on_path else ["abandoned branch"]
            if c.copy_of is not None:
                marks.append(f"restored copy of #{self.index(c.copy_of)}")
            if c.checkpoint_id == self.head_id:
                marks.append("head")
            step = "" if c.step is None else f" step {c.step}"
            suffix = f" [{', '.join(marks)}]" if marks else ""
            lines.append(f"  #{i}{step} {c.source}{suffix}")
            for e in c.effects:
                lines.append(f"      {e.tool}#{e.seq}: {_style(e)[0]}")
        for e in self.unplaced:
            lines.append(f"  (checkpoint gone) {e.tool}#{e.seq}: {_style(e)[0]}")
        return "\n".join(lines)

    def _repr_svg_(self) -> str:
        return self.to_svg()

    def to_svg(self) -> str:
        """The picture as a standalone SVG document."""
        lay = _layout(self.checkpoints)
        out = [
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{lay.width}" '
            f'height="{lay.height}" font-family="sans-serif" font-size="11">',
            f'<text x="10" y="18" font-size="13" font-weight="bold">'
            f"{escape(self.thread_id)}</text>",
        ]
        if lay.two_lanes:
            out.append(
                f'<text x="10" y="{_TOP + lay.lane_gap - 30}" fill="#80868b">'
                "abandoned branches</text>"
            )
        out += _svg_edges(self.checkpoints, lay.pos)  # under the nodes
        for i, c in enumerate(self.checkpoints, start=1):
            x, y = lay.pos[c.checkpoint_id]
            out += self._svg_node(i, c, x, y)
            out += _svg_effects(c.effects, x, y)
        out += _svg_legend(lay.legend_y)
        if self.unplaced:
            out.append(
                f'<text x="10" y="{lay.height - 6}" fill="#80868b">'
                f"{len(self.unplaced)} effect(s) whose checkpoints are gone are not "
                "drawn</text>"
            )
        out.append("</svg>")
        return "".join(out)

    def _svg_node(self, i: int, c: TimelineCheckpoint, x: float, y: float) -> list[str]:
        """Checkpoint `c` (column `i`): its circle or diamond, number and label."""
        head = c.checkpoint_id == self.head_id
        stroke = 'stroke="#202124" stroke-width="3"' if head else 'stroke="#5f6368"'
        fill = "#ffffff" if c.on_path else "#f1f3f4"
        if c.copy_of is not None:
            shape = (
                f'<polygon points="{x},{y - 11} {x + 11},{y} {x},{y + 11} {x - 11},{y}" '
                f'fill="#ceead6" {stroke}/>'
            )
        else:
            shape = f'<circle cx="{x}" cy="{y}" r="9" fill="{fill}" {stroke}/>'
        label = c.source if c.step is None else f"{c.source} · step {c.step}"
        if c.copy_of is not None:
            label = f"restored #{self.index(c.copy_of)}"
        if head:
            label += " · head"
        return [
            shape,
            f'<text x="{x}" y="{y + 4}" text-anchor="middle">{i}</text>',
            f'<text x="{x}" y="{y - 16}" text-anchor="middle" fill="#3c4043">'
            f"{escape(label)}</text>",
        ]


_COL, _TOP, _BOX_H = 120, 70, 22
"""A checkpoint's column width, the top lane's height, an effect box's height."""


@dataclass(frozen=True)
class _Layout:
    """The picture's size and where each checkpoint sits."""

    lane_gap: int
    two_lanes: bool
    width: int
    height: int
    legend_y: int
    pos: dict[str, tuple[float, float]]


def _layout(checkpoints: Sequence[TimelineCheckpoint]) -> _Layout:
    def depth(on_path: bool) -> int:
        stacks = [len(c.effects) for c in checkpoints if c.on_path == on_path]
        return 40 + max(stacks, default=0) * (_BOX_H + 4)

    lane_gap = depth(True) + 30
    two_lanes = any(not c.on_path for c in checkpoints)
    width = max(_COL * len(checkpoints) + 40, 700)
    legend_y = _TOP + (lane_gap + depth(False) if two_lanes else depth(True))
    height = legend_y + 24 * ((len(LEGEND) + 2) // 3) + 14
    pos: dict[str, tuple[float, float]] = {
        c.checkpoint_id: (
            40 + _COL * i + _COL / 2 - 20,
            _TOP + (0 if c.on_path else lane_gap),
        )
        for i, c in enumerate(checkpoints)
    }
    return _Layout(lane_gap, two_lanes, width, height, legend_y, pos)


def _svg_edges(
    checkpoints: Sequence[TimelineCheckpoint], pos: dict[str, tuple[float, float]]
) -> list[str]:
    """Parent edges, and a dashed arc from each restored copy's target."""
    out = []
    for c in checkpoints:
        if c.parent_id in pos:
            (x1, y1), (x2, y2) = pos[c.parent_id], pos[c.checkpoint_id]
            colour = "#5f6368" if c.on_path else "#bdc1c6"
            out.append(
                f'<path d="M{x1},{y1} C{(x1 + x2) / 2},{y1} {(x1 + x2) / 2},{y2} '
                f'{x2},{y2}" fill="none" stroke="{colour}" stroke-width="2"/>'
            )
        if c.copy_of in pos:
            (x1, y1), (x2, y2) = pos[c.copy_of], pos[c.checkpoint_id]
            out.append(
                f'<path d="M{x1},{y1 - 10} Q{(x1 + x2) / 2},{y1 - 45} {x2},{y2 - 10}" '
                'fill="none" stroke="#188038" stroke-dasharray="4 3"/>'
            )
    return out


def _svg_effects(effects: Sequence[Effect], x: float, y: float) -> list[str]:
    """The effects under a checkpoint at (x, y), one box each, top down."""
    out = []
    for k, effect in enumerate(effects):
        _, bg, fg = _style(effect)
        by = y + 20 + k * (_BOX_H + 4)
        dash = ' stroke-dasharray="3 2"' if bg == "#ffffff" else ""
        deco = ' text-decoration="line-through"' if bg == _UNDONE[1] else ""
        out.append(
            f'<rect x="{x - _COL / 2 + 6}" y="{by}" width="{_COL - 12}" '
            f'height="{_BOX_H}" rx="4" fill="{bg}" stroke="{fg}"{dash}/>'
            f'<text x="{x}" y="{by + 15}" text-anchor="middle" fill="{fg}"{deco}>'
            f"{escape(_short(effect.tool, 16))} #{effect.seq}</text>"
        )
    return out


def _svg_legend(legend_y: int) -> list[str]:
    out = []
    for n, (label, bg, fg) in enumerate(LEGEND):
        lx, ly = 10 + (n % 3) * 230, legend_y + 24 * (n // 3)
        out.append(
            f'<rect x="{lx}" y="{ly}" width="14" height="14" rx="3" fill="{bg}" '
            f'stroke="{fg}"/><text x="{lx + 20}" y="{ly + 11}">{escape(label)}</text>'
        )
    return out


def _short(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def timeline_of(
    thread_id: str,
    checkpoints: Iterable[CheckpointTuple],
    effects: Sequence[Effect],
) -> Timeline:
    """Build a `Timeline` from checkpoints and effects already read (no I/O).

    Args:
        thread_id: The thread.
        checkpoints: Its checkpoints, any order; subgraph namespaces are left out.
        effects: Its effects, any order.
    """
    root = [
        t for t in checkpoints if not t.config["configurable"].get("checkpoint_ns", "")
    ]
    root.sort(key=lambda t: str(t.config["configurable"]["checkpoint_id"]))
    parents = {
        str(t.config["configurable"]["checkpoint_id"]): (
            str(t.parent_config["configurable"]["checkpoint_id"])
            if t.parent_config
            else None
        )
        for t in root
    }
    copies = {
        str(t.config["configurable"]["checkpoint_id"]): str(mark["copy_of"])
        for t in root
        if isinstance(mark := (t.metadata or {}).get("lgrb_restore"), dict)
    }
    head = str(root[-1].config["configurable"]["checkpoint_id"]) if root else None
    # The path back from the head; a restored copy stands for its target, so
    # the path goes on through the target (as rollbacks see it).
    path: set[str] = set()
    current = head
    while current is not None and current not in path:
        path.add(current)
        current = copies.get(current) or parents.get(current)
    drawn: dict[str, TimelineCheckpoint] = {}
    for t in root:
        cid = str(t.config["configurable"]["checkpoint_id"])
        meta = t.metadata or {}
        step = meta.get("step")
        drawn[cid] = TimelineCheckpoint(
            checkpoint_id=cid,
            parent_id=parents[cid],
            step=int(step) if isinstance(step, int) else None,
            source=str(meta.get("source", "")),
            on_path=cid in path,
            copy_of=copies.get(cid),
        )
    unplaced: list[Effect] = []
    for effect in sorted(effects, key=lambda e: e.seq):
        where = drawn.get(effect.root_checkpoint_id) or drawn.get(
            effect.base_checkpoint_id or ""
        )
        if where is None:
            unplaced.append(effect)
        else:
            where.effects.append(effect)
    return Timeline(thread_id, list(drawn.values()), head, unplaced)


def _thread(config: RunnableConfig) -> tuple[str, RunnableConfig]:
    thread_id = (config.get("configurable") or {}).get("thread_id")
    if thread_id is None:
        raise InvalidConfigError(
            'timeline() needs the thread: pass {"configurable": {"thread_id": ...}}.'
        )
    return str(thread_id), {"configurable": {"thread_id": thread_id}}


def timeline(saver: Any, config: RunnableConfig) -> Timeline:
    """Read a thread from a rollback saver and return its `Timeline`.

    Args:
        saver: Any of this package's savers (the async ones from another
            thread, as their sync API requires; else use `atimeline`).
        config: Names the thread (`configurable.thread_id`).
    """
    thread_id, thread = _thread(config)
    return timeline_of(thread_id, saver.list(thread), saver.list_effects(thread))


async def atimeline(saver: Any, config: RunnableConfig) -> Timeline:
    """Async twin of `timeline`."""
    thread_id, thread = _thread(config)
    checkpoints = [t async for t in saver.alist(thread)]
    return timeline_of(thread_id, checkpoints, await saver.alist_effects(thread))
