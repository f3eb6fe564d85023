"""Spans of footage as ``(start, end)`` pairs of epoch seconds: their union with a tolerance, cut
to a window, the gaps between them, the overlap of two sets (:mod:`coverage`) and what one set
holds that the other does not (the status page's timelines)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

Interval = tuple[float, float]


@dataclass
class Gap:
    start: float
    end: float

    @property
    def seconds(self) -> float:
        return self.end - self.start


def merge(intervals: Iterable[Interval], tolerance: float) -> list[Interval]:
    """Union of intervals, joining those separated by at most ``tolerance``. (The stretch being
    joined is kept in two locals: a day of a hundred cameras is 144,000 spans.)"""
    merged: list[Interval] = []
    first, last = 0.0, None
    for start, end in sorted(intervals):
        if last is not None and start <= last + tolerance:
            if end > last:  # (what max(last, end) gives)
                last = end
        else:
            if last is not None:
                merged.append((first, last))
            first, last = start, end
    if last is not None:
        merged.append((first, last))
    return merged


def clip(intervals: Iterable[Interval], start: float, end: float, tolerance: float) -> list[Interval]:
    """Intervals cut to the window; an edge within ``tolerance`` of the window's is moved onto it."""
    out = []
    for a, b in intervals:
        a, b = max(a, start), min(b, end)
        if b <= a:
            continue
        out.append((start if a - start <= tolerance else a, end if end - b <= tolerance else b))
    return out


def covered(intervals: Iterable[Interval], start: float, end: float, tolerance: float) -> list[Interval]:
    """What the window holds: the union (holes up to ``tolerance`` bridged), cut to the window."""
    return clip(merge(intervals, tolerance), start, end, tolerance)


def total(intervals: Iterable[Interval]) -> float:
    return sum(b - a for a, b in intervals)


def intersect(left: Sequence[Interval], right: Sequence[Interval]) -> list[Interval]:
    out, i, j = [], 0, 0
    while i < len(left) and j < len(right):
        a, b = max(left[i][0], right[j][0]), min(left[i][1], right[j][1])
        if a < b:
            out.append((a, b))
        if left[i][1] < right[j][1]:
            i += 1
        else:
            j += 1
    return out


def subtract(left: Sequence[Interval], right: Sequence[Interval]) -> list[Interval]:
    """What of ``left`` lies outside ``right`` (both sorted, non-overlapping): e.g. the seconds only
    the primary holds, for the timeline of a comparison."""
    out: list[Interval] = []
    j = 0
    for a, b in left:
        while j < len(right) and right[j][1] <= a:
            j += 1
        k, at = j, a
        while k < len(right) and right[k][0] < b:
            if right[k][0] > at:
                out.append((at, right[k][0]))
            at = max(at, right[k][1])
            k += 1
        if at < b:
            out.append((at, b))
    return out


def gaps_of(covered: Sequence[Interval], start: float, end: float) -> list[Gap]:
    gaps, at = [], start
    for a, b in covered:
        if a > at:
            gaps.append(Gap(at, a))
        at = max(at, b)
    if end > at:
        gaps.append(Gap(at, end))
    return gaps
