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

A long window over a short retention is listed from the start instead (:func:`from_names`): a
look-up is a ``stat`` (about 3 µs here), and a day of a hundred cameras is 144,000 indexed
segments. When the index names at least :data:`LIST_FROM` segments in the window and the
directory's size says it holds at most :data:`LIST_RATIO` names for each (:func:`worth_listing`),
one listing of names, without a ``stat`` (a name in it costs about a sixth of one), costs less than
their look-ups: an indexed segment is there while the directory has its name as a regular file,
and its row says the rest (the mirror's files are ours and never rewritten: docs/design.md,
"Coverage", says what that leaves out). The files found are those :func:`list_window` finds
(every segment of the window and the one before it; every name without a row is looked up and
read as before), so step 2 is not needed.
"""

from __future__ import annotations

import math
import os
import stat
import time
from bisect import bisect_left
from dataclasses import dataclass, field
from operator import attrgetter
from pathlib import Path
from typing import NamedTuple

from . import intervals, timing
from .index import IndexError_, Row, SegmentIndex, start_of
from .segments import SEGMENT_OR_MOVED

LOOK_UP_LIMIT = 10_000  # names; a listing of 43,200 entries costs about what 10,000 failed look-ups do
LIST_FROM = 1_000  # indexed segments in a window from which a listing of names may replace their look-ups
LIST_RATIO = 3  # ... when the directory holds at most this many names for each of them
DIRENT_BYTES = 20  # the least a directory's size grows by per name (tmpfs; ext4 28 and more, btrfs 38)
_KEY = "%Y%m%d_%H%M%S"
_NAME = attrgetter("name")


class Listed(NamedTuple):
    """A segment file as ``stat`` saw it."""

    name: str
    size: int
    mtime_ns: int


Found = Listed | Row  # a file of the window: as stat saw it, or the row that stands for it (see CameraFiles)


@dataclass
class CameraFiles:
    """One camera's segment files for a window, and the index's rows for them. A file is its row
    (not a :class:`Listed`) once the row is known to stand for it: its size and mtime matched, a
    listing of names saw an indexed segment's name (:func:`from_names`), or it was parsed."""

    id: str
    directory: Path
    root: str
    listed: list[Found] = field(default_factory=list)
    rows: dict[str, Row] = field(default_factory=dict)
    problem: str | None = None
    indexed: set[str] = field(default_factory=set)  # names the index had a row for
    older: float | None = None  # the start of some footage older than the window, when nothing else says so
    changed: float = math.inf  # the directory's mtime: no segment is named after it (see :func:`horizon`)
    looked_up: int = 0  # names looked up one by one
    listed_names: bool = False  # listed from the start (:func:`from_names`): nothing is left to look up


def key(epoch: float) -> str:
    """The name prefix of the first whole second at or after ``epoch``."""
    return time.strftime(_KEY, time.gmtime(math.ceil(epoch)))


def name_of(second: int) -> str:
    return time.strftime(_KEY, time.gmtime(second)) + ".mp4"


def list_window(directory: Path, start: float, end: float) -> list[Found]:
    """Segment files (regular, real names) starting in ``[start, end)``, and the last one before,
    from a listing of the whole directory."""
    low, high = key(start), key(end)
    inside: list[Found] = []
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
    """Add the regular files among ``names`` (stat by name, no listing): a file its row still
    matches as that row, any other as :class:`Listed`; stop at the first one found with
    ``first_only``. (The files found so far stay in name order.)"""
    if not names:
        return
    known, found, rows = {item.name for item in cam.listed}, len(cam.listed), cam.rows
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
                row = rows.get(name)
                if row is not None and row.size == info.st_size and row.mtime_ns == info.st_mtime_ns:
                    cam.listed.append(row)
                else:
                    cam.listed.append(Listed(name, info.st_size, info.st_mtime_ns))
                if first_only:
                    break
    finally:
        os.close(fd)
    if len(cam.listed) > found:
        cam.listed.sort(key=_NAME)


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
            if worth_listing(info.st_size, len(cam.rows)):
                from_names(cam, index, start, end, notes)
            else:
                _look_up(cam, sorted(cam.rows))
    except OSError as exc:
        cam.problem = f"cannot read {cam.directory}: {exc.strerror or exc}"


def worth_listing(directory_size: int, rows: int) -> bool:
    """Whether one listing of names costs less than looking ``rows`` names up. A name in a listing
    costs about a sixth of a ``stat`` (docs/benchmarks.md, "The status page"), and the directory's
    size bounds from above how many names it holds."""
    return rows >= LIST_FROM and directory_size / DIRENT_BYTES <= LIST_RATIO * rows


def from_names(cam: CameraFiles, index: SegmentIndex | None, start: float, end: float, notes: list[str]) -> None:
    """Steps 1 and 2 from one listing of names (``cam.rows``: the index's rows for the window and
    the one before it), finding what :func:`list_window` finds: an indexed segment whose name the
    directory has (as a regular file, by the entry's type) is taken as its row says; every other
    segment name of the window is looked up (its size and mtime decide whether it is parsed)."""
    cam.listed_names = True
    with os.scandir(cam.directory) as entries:
        regular = {entry.name: entry.is_file(follow_symlinks=False) for entry in entries}
    names = sorted(regular)
    first, stop = bisect_left(names, key(start)), bisect_left(names, key(end))  # a name sorts as its 15 first letters
    rows = cam.rows
    inside = [name for name in names[first:stop] if regular[name] and (name in rows or SEGMENT_OR_MOVED.fullmatch(name))]
    before = next((name for name in reversed(names[:first]) if SEGMENT_OR_MOVED.fullmatch(name)), None)
    if before is not None and regular[before]:  # the segment running into the window
        _row_for(cam, before, index, notes)
        inside.insert(0, before)
    cam.listed = [row for name in inside if (row := rows.get(name)) is not None]
    _look_up(cam, [name for name in inside if name not in rows])


def _row_for(cam: CameraFiles, name: str, index: SegmentIndex | None, notes: list[str]) -> None:
    """The index's row for ``name`` when it was not asked for yet (the segment running into the
    window started longer ago than :func:`from_index` looks back)."""
    if index is None or name in cam.rows:
        return
    try:
        cam.rows.update(index.rows(cam.id, name, name + "\x7f", cam.root))
        cam.indexed = set(cam.rows)
    except IndexError_ as exc:
        notes.append(str(exc))


def timed(cam: CameraFiles) -> list[Row]:
    """The files with a row, as :func:`timing.spans` judges them: a row says the file's size and
    mtime too (it was read from it, or the file was checked against it: :mod:`coverage`)."""
    rows = cam.rows
    return [row for item in cam.listed if (row := rows.get(item.name)) is not None]


def horizon(cam: CameraFiles, segments: list[Row]) -> float:
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
    counted, broken = timing.judged(segments, timing.LONGEST_SEGMENT)
    trusted = [span for i, span in enumerate(counted) if i not in broken]
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
    :data:`LOOK_UP_LIMIT`, and the directory must be listed instead. Nothing to look up after
    :func:`from_names`: the listing had every name."""
    if cam.listed_names:
        return True
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
