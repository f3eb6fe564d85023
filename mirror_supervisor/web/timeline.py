"""One camera's timeline: the window cut into stretches of one kind each, drawn as inline SVG.

Pure: no file, no clock. The stretches come from what coverage found (covered seconds, invalid
segments, and with a primary directory the primary's covered seconds); the drawing is a bar of
:data:`WIDTH` user units, one ``rect`` per stretch with a ``<title>`` (start, end and length, shown
on hover) and ``data-kind``/``data-start``/``data-end`` attributes (epoch seconds) for tools, and
an axis whose labels depend on the window's length. Every text is escaped here, though none of it
comes from the NVR's database: the caller's camera ids and names never enter the SVG.
"""

from __future__ import annotations

import bisect
import html
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from ..footage.intervals import Interval, merge

WIDTH = 600  # user units of the bar (and pixels at the page's scale)
BAR_TOP, BAR_HEIGHT = 2, 18
AXIS_Y = BAR_TOP + BAR_HEIGHT + 12  # baseline of the axis labels
HEIGHT = AXIS_Y + 3
INVALID_WIDTH = 3.0  # an invalid segment has no playable length: a mark this wide at its start
MIN_WIDTH = 1.0  # a stretch narrower than one unit is drawn one unit wide, so a short gap stays visible

# kind -> (legend text, colour). Clearly different colours: green for footage the mirror holds,
# red for a hole, blue for what only the mirror saved, orange for what only the primary holds.
KINDS: dict[str, tuple[str, str]] = {
    "covered": ("recorded", "#2e7d32"),
    "gap": ("gap: nothing recorded", "#c62828"),
    "invalid": ("invalid segment", "#6a1b9a"),
    "before": ("before the camera's first segment", "#e0e0e0"),
    "pending": ("not read yet", "#9e9e9e"),
    "both": ("in both", "#2e7d32"),
    "only_mirror": ("only in the mirror (the mirror saved it)", "#1565c0"),
    "only_primary": ("only in the primary (the mirror missed it)", "#ef6c00"),
    "neither": ("in neither: nothing recorded", "#c62828"),
}
MIRROR_KINDS = ("covered", "gap", "invalid", "before", "pending")
COMPARED_KINDS = ("both", "only_mirror", "only_primary", "neither", "invalid", "pending")
# Axis steps in seconds, the first that leaves at most MAX_TICKS labels is used.
STEPS = (300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400, 172800, 604800)
MAX_TICKS = 8


@dataclass(frozen=True)
class Stretch:
    kind: str
    start: float
    end: float
    name: str = ""  # an invalid segment's file name

    @property
    def seconds(self) -> float:
        return self.end - self.start


@dataclass
class Timeline:
    start: float
    end: float
    stretches: list[Stretch] = field(default_factory=list)
    compared: bool = False  # with the primary: both / only one / neither instead of covered / gap

    def of_kind(self, kind: str) -> list[Stretch]:
        return [s for s in self.stretches if s.kind == kind]


def build(start: float, end: float, covered: Iterable[Interval], invalid: Iterable[tuple[str, float]] = (),
          pending: Iterable[Interval] = (), first: float | None = None,
          primary: Iterable[Interval] | None = None) -> Timeline:
    """The window ``[start, end]`` in stretches. ``covered``: the mirror's playable seconds;
    ``invalid``: (name, start) of invalid segments; ``pending``: seconds not read yet (they are
    neither footage nor gap); ``first``: the camera's first footage (before it: ``before``, not a
    gap; None: no footage known at all, the whole window is ``before``); ``primary``: the
    primary's playable seconds, which turns the comparison on (``first`` is then not used: what
    only the primary holds before the mirror's first segment is just what matters)."""
    mirror = _clean(covered, start, end)
    other = None if primary is None else _clean(primary, start, end)
    waiting = _clean(pending, start, end)
    cuts = sorted({start, end, *_edges(mirror), *_edges(waiting), *_edges(other or [])})
    if other is None and (first is None or start < first < end):
        cuts = sorted({*cuts, end if first is None else first})
    pieces: list[Stretch] = []
    for a, b in zip(cuts, cuts[1:], strict=False):
        if b <= a:
            continue
        kind = _kind((a + b) / 2, mirror, other, waiting, first)
        if pieces and pieces[-1].kind == kind and pieces[-1].end == a:
            pieces[-1] = Stretch(kind, pieces[-1].start, b)
        else:
            pieces.append(Stretch(kind, a, b))
    marks = [Stretch("invalid", at, at, name) for name, at in sorted(invalid, key=lambda item: item[1])
             if start <= at < end]
    return Timeline(start, end, pieces + marks, compared=other is not None)


def _clean(intervals: Iterable[Interval], start: float, end: float) -> list[Interval]:
    return [(max(a, start), min(b, end)) for a, b in merge(intervals, 0.0) if min(b, end) > max(a, start)]


def _edges(intervals: Sequence[Interval]) -> list[float]:
    return [edge for interval in intervals for edge in interval]


def _inside(at: float, intervals: Sequence[Interval]) -> bool:
    i = bisect.bisect_right(intervals, (at, float("inf"))) - 1
    return i >= 0 and intervals[i][0] <= at < intervals[i][1]


def _kind(at: float, mirror: Sequence[Interval], other: Sequence[Interval] | None, waiting: Sequence[Interval],
          first: float | None) -> str:
    if _inside(at, waiting):
        return "pending"
    here = _inside(at, mirror)
    if other is not None:
        there = _inside(at, other)
        return {(True, True): "both", (True, False): "only_mirror", (False, True): "only_primary"}.get(
            (here, there), "neither")
    if here:
        return "covered"
    return "before" if first is None or at < first else "gap"


# -- drawing ------------------------------------------------------------------------------------

def x_of(timeline: Timeline, at: float) -> float:
    span = timeline.end - timeline.start
    return 0.0 if span <= 0 else (at - timeline.start) / span * WIDTH


def geometry(timeline: Timeline, stretch: Stretch) -> tuple[float, float]:
    """(x, width) of a stretch in the bar: exact, except that nothing is drawn narrower than
    :data:`MIN_WIDTH` (an invalid mark :data:`INVALID_WIDTH`) and nothing leaves the bar."""
    x = x_of(timeline, stretch.start)
    least = INVALID_WIDTH if stretch.kind == "invalid" else MIN_WIDTH
    width = max(least, x_of(timeline, stretch.end) - x)
    x = min(max(0.0, x), WIDTH - least)
    return round(x, 2), round(min(width, WIDTH - x), 2)


def stamp(epoch: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(epoch)) + " UTC"


def length(seconds: float) -> str:
    """A stretch's length: ``42 s``, ``12 min 05 s``, ``3 h 20 min``, ``2 d 04 h``."""
    seconds = int(round(max(0.0, seconds)))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    if seconds < 172800:
        return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"
    return f"{seconds // 86400} d {seconds % 86400 // 3600:02d} h"


def title(stretch: Stretch) -> str:
    what = KINDS[stretch.kind][0]
    if stretch.kind == "invalid":
        return f"{what} {stretch.name}, named {stamp(stretch.start)}"
    return f"{what}: {stamp(stretch.start)} to {stamp(stretch.end)} ({length(stretch.seconds)})"


def ticks(start: float, end: float) -> list[tuple[float, str]]:
    """Round UTC moments inside the window and their labels: ``HH:MM`` for steps under a day,
    ``Mon 07`` (weekday and day of the month) for days."""
    span = end - start
    step = next((s for s in STEPS if span / s <= MAX_TICKS), STEPS[-1])
    fmt = "%a %d" if step >= 86400 else "%H:%M"
    first = -(-start // step) * step
    out, at = [], first
    while at <= end:
        out.append((at, time.strftime(fmt, time.gmtime(at))))
        at += step
    return out


def svg(timeline: Timeline, label: str = "timeline") -> str:
    """The bar and its axis as an inline ``<svg>`` element (no script, no external reference)."""
    e = _escape
    parts = [f'<svg class="timeline" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" '
             f'role="img" aria-label="{e(label)}" xmlns="http://www.w3.org/2000/svg">']
    for stretch in sorted(timeline.stretches, key=lambda s: s.kind == "invalid"):  # marks on top
        x, width = geometry(timeline, stretch)
        parts.append(f'<rect class="k-{stretch.kind}" x="{x}" y="{BAR_TOP}" width="{width}" height="{BAR_HEIGHT}" '
                     f'fill="{KINDS[stretch.kind][1]}" data-kind="{stretch.kind}" data-start="{stretch.start:.3f}" '
                     f'data-end="{stretch.end:.3f}"><title>{e(title(stretch))}</title></rect>')
    for at, text in ticks(timeline.start, timeline.end):
        x = round(x_of(timeline, at), 2)
        anchor = "start" if x < 20 else "end" if x > WIDTH - 20 else "middle"
        parts.append(f'<line class="tick" x1="{x}" x2="{x}" y1="{BAR_TOP + BAR_HEIGHT}" y2="{BAR_TOP + BAR_HEIGHT + 3}" '
                     f'stroke="#555"/><text class="tick" x="{x}" y="{AXIS_Y}" text-anchor="{anchor}" font-size="10" '
                     f'fill="#333">{e(text)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def legend(compared: bool, pending: bool = True) -> str:
    """The kinds a timeline of this mode can show, with their colours (HTML, classes styled by the
    page); ``pending``: whether "not read yet" can appear (not in a finished report)."""
    kinds = [kind for kind in (COMPARED_KINDS if compared else MIRROR_KINDS) if pending or kind != "pending"]
    return '<ul class="legend">' + "".join(
        f'<li><span class="swatch k-{kind}"></span>{_escape(KINDS[kind][0])}</li>' for kind in kinds) + "</ul>"


def legend_css() -> str:
    """The swatches' colours, for the page's one style sheet (no style attributes: the CSP)."""
    return "".join(f".swatch.k-{kind}{{background:{colour}}}" for kind, (_, colour) in KINDS.items())


def _escape(text: str) -> str:
    return html.escape(text, quote=True)
