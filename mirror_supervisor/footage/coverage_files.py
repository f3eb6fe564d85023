"""Which segment files a coverage window needs (:mod:`coverage`), without reading a camera's history.

The coverage child of the master and ``status`` ask for the last hour of every camera every
minute, and a camera keeps its whole retention in one directory (30 days of 60 s segments are
43,200 files): listing it costs in proportion to the retention, not to the hour. Segment names
are the UTC second a segment starts, so a window is a range of names, and the mirror's files are
found in three steps that touch only that range:

1. :func:`from_index`: the index's rows whose names lie in the window, plus its newest row before
   the window (the segment running at its start); each file is looked up by name (``stat``), and
   only files that exist are used.
2. :func:`names_to_look_up`: every stretch of the window the files found so far leave uncovered
   (a gap, were nothing else there) may hold files the index does not know: the segment being
   written, a segment whose worker was killed before it indexed it, a write that failed, a
   deleted index. Every second of such a stretch is looked up by its name (from a few seconds
   before it: names drop their second's fraction); a stretch at the window's start is searched
   backwards, newest first, until a file is found (only the last segment before the window can
   run into it, and none is believed longer than :data:`timing.LONGEST_SEGMENT`). No name from
   the directory's mtime up to now is looked up (:func:`horizon`): a camera down for hours costs
   nothing.
3. :func:`older_footage`: when no file starts at or before the window's start, whether the
   camera has older footage at all (coverage since a camera's first footage must not take a
   camera back from a long outage for a new one): a listing that stops at the first older name.

The cost is therefore bounded by the window (at most 7,260 look-ups for an hour, a few dozen when
the index is complete), whatever the retention. A window that would need more look-ups than
:data:`LOOK_UP_LIMIT` (a day-long ``coverage`` without an index) is listed instead, as is the
NVR's primary directory, whose names are the NVR's (:func:`list_window`).
"""

from __future__ import annotations

import math
import os
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import intervals, timing
from .index import IndexError_, Row, SegmentIndex, start_of
from .segments import SEGMENT_OR_MOVED

LOOK_UP_LIMIT = 10_000  # names; a listing of 43,200 entries costs about what 10,000 failed look-ups do
_KEY = "%Y%m%d_%H%M%S"


@dataclass
class Listed:
    name: str
    size: int
    mtime_ns: int


@dataclass
class CameraFiles:
    """One camera's segment files for a window, and the index's rows for them."""

    id: str
    directory: Path
    root: str
    listed: list[Listed] = field(default_factory=list)
    rows: dict[str, Row] = field(default_factory=dict)
    problem: str | None = None
    indexed: set[str] = field(default_factory=set)  # names the index had a row for
    older: float | None = None  # the start of some footage older than the window, when nothing else says so
    changed: float = math.inf  # the directory's mtime: no segment is named after it (see :func:`horizon`)
    looked_up: int = 0  # names looked up one by one


def key(epoch: float) -> str:
    """The name prefix of the first whole second at or after ``epoch``."""
    return time.strftime(_KEY, time.gmtime(math.ceil(epoch)))


def name_of(second: int) -> str:
    return time.strftime(_KEY, time.gmtime(second)) + ".mp4"


def list_window(directory: Path, start: float, end: float) -> list[Listed]:
    """Segment files (regular, real names) starting in ``[start, end)``, and the last one before,
    from a listing of the whole directory."""
    low, high = key(start), key(end)
    inside: list[Listed] = []
    before: os.DirEntry[str] | None = None
    with os.scandir(directory) as entries:
        for entry in entries:
            name = entry.name
            prefix = name[:15]
            if prefix >= high or not SEGMENT_OR_MOVED.fullmatch(name):
                continue
            if prefix < low:
                if before is None or name > before.name:
                    before = entry
                continue
            info = entry.stat(follow_symlinks=False)
            if entry.is_file(follow_symlinks=False):
                inside.append(Listed(name, info.st_size, info.st_mtime_ns))
    if before is not None and before.is_file(follow_symlinks=False):
        info = before.stat(follow_symlinks=False)
        inside.append(Listed(before.name, info.st_size, info.st_mtime_ns))
    inside.sort(key=lambda item: item.name)
    return inside


def _look_up(cam: CameraFiles, names: list[str], first_only: bool = False) -> None:
    """Add the regular files among ``names`` (stat by name, no listing); stop at the first one found
    with ``first_only``."""
    known = {item.name for item in cam.listed}
    fd = os.open(cam.directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for name in names:
            if name in known:
                continue
            known.add(name)  # the stretches looked up around two gaps may overlap
            cam.looked_up += 1
            try:
                info = os.stat(name, dir_fd=fd, follow_symlinks=False)
            except FileNotFoundError:
                continue
            if stat.S_ISREG(info.st_mode):
                cam.listed.append(Listed(name, info.st_size, info.st_mtime_ns))
                if first_only:
                    break
    finally:
        os.close(fd)
    cam.listed.sort(key=lambda item: item.name)


def from_index(cam: CameraFiles, index: SegmentIndex | None, start: float, end: float, notes: list[str]) -> None:
    """Step 1: the files the index names in the window and the newest one it names before it."""
    try:
        try:
            info = os.stat(cam.directory)
        except FileNotFoundError:
            info = None
        if info is None or not stat.S_ISDIR(info.st_mode):
            cam.problem = f"no directory {cam.directory}"
            return
        cam.changed = info.st_mtime
        if index is not None:
            low = key(start - timing.LONGEST_SEGMENT)
            try:
                cam.rows = index.rows(cam.id, key(start), key(end), cam.root)
                before = index.last_before(cam.id, key(start), low, cam.root)
            except IndexError_ as exc:
                notes.append(str(exc))
                before = None
            if before is not None:
                cam.rows[before.name] = before
            cam.indexed = set(cam.rows)
            _look_up(cam, sorted(cam.rows))
    except OSError as exc:
        cam.problem = f"cannot read {cam.directory}: {exc.strerror or exc}"


def timed(cam: CameraFiles) -> list[timing.Timed]:
    """The files with a row, as :func:`timing.spans` judges them."""
    out = []
    for item in cam.listed:
        row = cam.rows.get(item.name)
        if row is not None:
            duration = row.duration if row.playable else 0.0
            out.append(timing.Timed(item.name, row.start, duration, item.mtime_ns / 1e9))
    return out


def horizon(cam: CameraFiles, segments: list[timing.Timed]) -> float:
    """The last second a segment can be named: creating a file sets its directory's mtime, and
    ffmpeg names a segment by the second it creates it, so no name lies after the directory's
    mtime (a camera down for hours has nothing to look up). Deleting or renaming files only moves
    the mtime later. Not used (infinite) when a file found so far is named after it: this file
    system does not keep directory mtimes."""
    latest = cam.changed + timing.SLACK
    return latest if all(s.start <= latest for s in segments) else math.inf


def _seconds(first: int, stop: int, limit: float, now: float) -> list[int]:
    """The seconds of ``[first, stop)`` a segment can be named: none from just after the
    :func:`horizon` up to ``now``. A name in the future (a clock stepped back, a file made by
    hand) is no creation the directory's mtime says anything about, so it is looked up."""
    if limit >= now:
        return list(range(first, stop))
    return [*range(first, min(stop, math.floor(limit) + 1)), *range(max(first, math.floor(now) + 1), stop)]


def names_to_look_up(cam: CameraFiles, start: float, end: float, tolerance: float,
                     now: float) -> tuple[list[str], list[str]]:
    """Step 2: the names that could hold footage the files found so far do not explain: forwards
    through every would-be gap, and backwards (newest first) from the window's start when nothing
    found covers it; none between the :func:`horizon` and ``now``. A file whose own timing was not
    believed explains nothing: its stretch is looked up too."""
    segments = timed(cam)
    trusted = [span for _, span, reason in timing.judged(segments, timing.LONGEST_SEGMENT) if reason is None]
    limit = horizon(cam, segments)
    forward: list[int] = []
    backward: list[int] = []
    for gap in intervals.gaps_of(intervals.covered(trusted, start, end, tolerance), start, end):
        first = math.floor(gap.start - timing.SLACK - 1)
        if gap.start <= start:
            oldest = max((s.start for s in segments if s.start <= start), default=start - timing.LONGEST_SEGMENT)
            backward = _seconds(math.floor(oldest) + 1, math.floor(start) + 1, limit, now)[::-1]
            first = math.floor(start) + 1
        forward += _seconds(first, math.ceil(gap.end), limit, now)
    return [name_of(second) for second in forward], [name_of(second) for second in backward]


def by_name(cam: CameraFiles, start: float, end: float, tolerance: float, now: float) -> bool:
    """Step 2, done: look the names up; False (nothing looked up) when there are more than
    :data:`LOOK_UP_LIMIT`, and the directory must be listed instead."""
    forward, backward = names_to_look_up(cam, start, end, tolerance, now)
    if len(forward) + len(backward) > LOOK_UP_LIMIT:
        return False
    try:
        _look_up(cam, backward, first_only=True)
        _look_up(cam, forward)
    except OSError as exc:
        cam.problem = f"cannot read {cam.directory}: {exc.strerror or exc}"
    return True


def older_footage(cam: CameraFiles, start: float) -> None:
    """Step 3: when no file found starts at or before ``start``, whether any segment older than the
    window exists (a listing that stops at the first one)."""
    latest = time.strftime(_KEY, time.gmtime(math.floor(start)))  # names starting at or before ``start``
    if cam.problem or any(item.name[:15] <= latest for item in cam.listed):
        return
    try:
        with os.scandir(cam.directory) as entries:
            for entry in entries:
                if entry.name[:15] <= latest and SEGMENT_OR_MOVED.fullmatch(entry.name) \
                        and entry.is_file(follow_symlinks=False):
                    cam.older = start_of(entry.name)
                    return
    except OSError as exc:
        cam.problem = f"cannot list {cam.directory}: {exc.strerror or exc}"
