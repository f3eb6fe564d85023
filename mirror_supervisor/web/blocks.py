"""What the timelines are made of: coverage read in UTC hour blocks, and which blocks to read again.

A page is asked for every 30 s while someone looks at it, and a day of 100 cameras costs about two
seconds of coverage (docs/benchmarks.md), a week seven times that. Nearly all of that answer does
not change between two looks: footage an hour old stays as it was. So coverage is read per block
of :data:`BLOCK` seconds (all cameras at once) and a block is read again only when

- it was read before it had *settled* (less than :data:`SETTLE` seconds after its end: the
  segment being written, the newest seconds), and its answer is older than :data:`FRESH`; or
- its answer is older than :data:`KEEP` (plus a stagger, so that a day of blocks read together is
  not read again together): files deleted or found since then (a hand-made change, pruning at
  the far end of a week) show up within that time.

The oldest block of a window is read from the window's start only: with a day's retention and a
day's window, the hour before the window's start holds little footage, and every second of a hole
is looked up by name (:mod:`..footage.coverage_files`), which made a first page four times as
slow as the rest of the day. A block knows the seconds up to :data:`EDGE` before it was read: ffmpeg writes a fragment per
keyframe, so the segment being written reaches the disk a keyframe interval late (plus coverage's
2 s tolerance, that leaves room for one of 10 s). Anything later, and any block not read yet, is
drawn as "not read yet", never as a gap. Pure: the clocks are arguments.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..footage.intervals import Interval
from .timeline import Timeline, build

BLOCK = 3600.0
SETTLE = 120.0  # after a block's end: its last segment complete and indexed
FRESH = 5.0  # a block that had not settled is read again after this (monotonic seconds)
KEEP = 900.0  # a settled block is read again after this, plus up to STAGGER
STAGGER = 300.0
EDGE = 8.0  # the newest seconds when a block was read: the segment being written, not yet there
OLDEST = 7 * 86400.0 + BLOCK  # blocks that end before now minus this are forgotten


@dataclass
class CameraBlock:
    """One camera's coverage in one block (from :func:`..footage.coverage.compute`)."""

    covered: list[Interval] = field(default_factory=list)
    invalid: list[tuple[str, float]] = field(default_factory=list)  # (name, start)
    primary: list[Interval] | None = None
    first: float | None = None  # the camera's first footage as that read saw it (maybe older than the block)
    problem: str | None = None


@dataclass
class Block:
    start: float
    known_until: float  # wall clock: the block's answer covers [known_from, known_until]
    read_at: float  # wall clock, when it was read
    taken: float  # listener's monotonic clock, when the answer arrived
    cameras: dict[str, CameraBlock]
    known_from: float = 0.0  # the window's start, when it began inside the block (else the block's start)

    @property
    def end(self) -> float:
        return self.start + BLOCK


def starts(start: float, end: float) -> list[float]:
    """The blocks a window ``[start, end]`` touches."""
    first = math.floor(start / BLOCK) * BLOCK
    return [first + i * BLOCK for i in range(max(1, math.ceil((end - first) / BLOCK)))]


class Store:
    """The blocks read so far, for one mirror directory and one kind of read (with or without
    the primary)."""

    def __init__(self, mirror_dir: str, primary: str | None) -> None:
        self.mirror_dir, self.primary = mirror_dir, primary
        self.blocks: dict[float, Block] = {}

    def stale(self, wanted: Sequence[float], cameras: Iterable[str], mono: float, since: float = 0.0) -> list[float]:
        """Which of the ``wanted`` blocks to read (again), newest first; ``since``: the window's
        start (the oldest block is needed from there on only)."""
        ids = set(cameras)
        out = []
        for start in wanted:
            block = self.blocks.get(start)
            if block is None or not ids <= block.cameras.keys() or block.known_from > max(start, since):
                out.append(start)
            elif block.read_at < block.end + SETTLE:
                if mono - block.taken >= FRESH:
                    out.append(start)
            elif mono - block.taken >= KEEP + _stagger(start):
                out.append(start)
        return sorted(out, reverse=True)

    def take(self, answer: Mapping[str, Any], mono: float) -> None:
        """One block's answer from the reading child (:mod:`.reader`); ignored when malformed."""
        try:
            start, read_at = float(answer["start"]), float(answer["read_at"])
            until = min(float(answer["known_until"]), start + BLOCK)
            since = max(float(answer.get("known_from", start)), start)
            cameras = {str(cid): _camera(data) for cid, data in answer["cameras"].items()}
        except (KeyError, TypeError, ValueError, AttributeError):
            return
        self.blocks[start] = Block(start, until, read_at, mono, cameras, since)

    def forget(self, now: float) -> None:
        for start in [s for s in self.blocks if s + BLOCK < now - OLDEST]:
            del self.blocks[start]

    def timeline(self, camera: str, start: float, end: float) -> tuple[Timeline, str | None]:
        """The camera's timeline of ``[start, end]`` from the blocks read so far, and the newest
        problem a read reported for it (e.g. its directory is missing)."""
        covered: list[Interval] = []
        invalid: list[tuple[str, float]] = []
        primary: list[Interval] | None = [] if self.primary else None
        pending: list[Interval] = []
        firsts: list[float] = []
        problem = None
        for block_start in starts(start, end):
            block = self.blocks.get(block_start)
            data = block.cameras.get(camera) if block is not None else None
            if block is None or data is None:
                pending.append((block_start, block_start + BLOCK))
                continue
            covered += data.covered
            invalid += data.invalid
            if primary is not None:
                primary += data.primary or []
            if data.first is not None:
                firsts.append(data.first)
            if block.known_from > block.start:
                pending.append((block.start, block.known_from))
            if block.known_until < block.end:
                pending.append((block.known_until, block.end))
            problem = data.problem
        first = min(firsts) if firsts else None
        return build(start, end, covered, invalid, pending, first, primary), problem


def _stagger(start: float) -> float:
    """Spreads the re-reads of blocks read together over :data:`STAGGER` seconds."""
    return (int(start // BLOCK) * 37) % int(STAGGER)


def _camera(data: Mapping[str, Any]) -> CameraBlock:
    primary = data.get("primary")
    first = data.get("first")
    return CameraBlock(
        covered=[(float(a), float(b)) for a, b in data.get("covered") or []],
        invalid=[(str(name), float(at)) for name, at in data.get("invalid") or []],
        primary=None if primary is None else [(float(a), float(b)) for a, b in primary],
        first=None if first is None else float(first),
        problem=None if data.get("problem") is None else str(data["problem"]))
