"""The retention rules: when a segment may be deleted, and when no deletion may be trusted at all.

Kept apart from the pass (:mod:`prune`), which only lists, decides with these rules and unlinks, so
that every rule that can keep a file is in one place. Deleting is the one irreversible thing this
project does, so every rule errs towards keeping. The NVR's rule for mirror copies is followed: a
segment is deleted when its modification time is older than its camera's ``retention_hours``.

Whose view of the database. The master's pass does not read the database: it is handed the
master's last good camera list (``prune.child_main``), so a table that is being rebuilt by an NVR
migration (CREATE new, copy, DROP old, RENAME), which the master already treats as damage, can
never make the pruner fall back to a default retention. A master that never had a good read hands
``None`` and the pass is skipped. A list read from a table without a ``retention_hours`` column
prunes nothing at all: the column's default (24 h) is not the NVR's answer but its absence.
The hand-run ``prune`` command reads the database itself; :func:`columns_refusal` says when that
read must not be pruned by. A camera id that is in the list twice, or differs from another only in
letter case, is not pruned (:func:`ambiguous_ids`).

Times that cannot be trusted. Retention compares the clock with mtimes; either can be wrong.

- ``now`` before 2020-01-01 UTC is an unset clock: the pass is skipped.
- A segment whose name and mtime agree within a day was stamped twice by the clock of its time.
  If the newest such segment is more than a day ahead of ``now``, the clock went backwards: the
  pass is skipped and names the segment (move it aside to let pruning resume).
- A file is never deleted, and counts as implausible, when its mtime is before 2020-01-01, more
  than a day in the future, or more than a day before the time in its own name. The last rule is
  the sound form of "before its directory existed": a segment cannot have been written before
  ffmpeg opened it, and its name is that moment. The directory itself cannot tell: its st_ctime
  changes with every file added, Python 3.11's ``os.stat`` has no birth time on Linux, many
  filesystems (NFS, CIFS, FAT) keep none, and a restored directory is younger than its files.
- A clock set far *forward* (a bad RTC reading 2040) would make every file look expired. The
  files ffmpeg writes afterwards carry that clock too, so no comparison of mtimes can catch it.
  What a clock step cannot fake is how much footage was recorded: ffmpeg cuts segments by stream
  time, so ``k`` segments of ``s`` seconds on one camera took at least ``k * s`` seconds of real
  time. A file is therefore deleted only when it is also past the *footage cutoff*
  (:class:`FootageCutoff`): some camera in the list has recorded at least ``retention_hours`` of
  segments after the file's mtime. After a jump, old files go exactly when the footage recorded
  since says they really expired; without any recording nothing more is deleted (the price: a
  mirror where nothing records keeps its last retention's worth of footage until something does).
  Gaps in recording only make the cutoff earlier, i.e. keep more; files held back by more than a
  day are reported as a suspected jump.
"""

from __future__ import annotations

import datetime
import math
import re
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any, NamedTuple

from ..cameras.camera import MIN_SEGMENT_SECONDS, Camera

SECONDS_PER_HOUR = 3600.0
# No segment of this project is older: a clock or an mtime before it was never set.
PLAUSIBLE_SINCE = datetime.datetime(2020, 1, 1, tzinfo=datetime.UTC).timestamp()
# How far two stamps may disagree before one of them is taken to be wrong: a day is far beyond any
# segment's length or any NTP correction, and far below any retention worth configuring.
CLOCK_TOLERANCE = 86400.0
RETENTION_COLUMN = "retention_hours"

# A plain decimal number: float() alone would also take "nan", "1_000" and non-ASCII digits,
# none of which the NVR would read as a number of hours.
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?", re.ASCII)


class Segment(NamedTuple):
    """One segment file as the pass listed it."""

    name: str
    mtime: float
    size: int
    start: float  # the UTC second its name encodes: when ffmpeg opened it


# What the clock rules judge: every listed camera with the segments found in its directory.
Footage = Iterable[tuple[Camera, list[Segment]]]


def parse_retention(value: Any) -> tuple[float | None, str | None]:
    """The retention in hours, or None and why the value cannot be trusted to delete anything.

    The NVR's column is INTEGER but SQLite stores whatever it was given. Any doubt means keeping
    everything: a wrong guess here deletes recordings nobody can bring back.
    """
    shown = repr(value)[:24]
    if value is None:
        return None, "retention_hours is NULL"
    if isinstance(value, bool):
        return None, f"retention_hours {shown} is not a number"
    if isinstance(value, (int, float)):
        hours = float(value)
    elif isinstance(value, str):
        text = value.strip()
        if not _NUMBER.fullmatch(text):
            return None, f"retention_hours {shown} is not a number"
        hours = float(text)
    else:
        return None, f"retention_hours {shown} is not a number"
    if not math.isfinite(hours):
        return None, f"retention_hours {shown} is not a finite number"
    if hours <= 0:
        return None, f"retention_hours {shown} is not positive"
    return hours, None


def ambiguous_ids(cameras: list[Camera]) -> dict[str, str]:
    """Ids whose directory, or whose retention, is not theirs alone, and why.

    A repeated id (a table rebuilt without its primary key) has two retentions; ids equal but for
    letter case share one directory on a case-insensitive volume. Which row is right cannot be
    known, so none of them is pruned.
    """
    counts = Counter(camera.id for camera in cameras)
    folded: dict[str, set[str]] = {}
    for camera_id in counts:
        folded.setdefault(camera_id.casefold(), set()).add(camera_id)
    reasons = {}
    for camera_id, count in counts.items():
        twins = sorted(folded[camera_id.casefold()] - {camera_id})
        if count > 1:
            reasons[camera_id] = f"id is in the camera list {count} times; its retention is ambiguous"
        elif twins:
            reasons[camera_id] = f"id differs only in letter case from {twins[0]!r}; they may share a directory"
    return reasons


def columns_refusal(columns: frozenset[str], state_dir: Path | None) -> str | None:
    """Why a table read by hand must not be pruned by, or None.

    It lacks ``retention_hours``, or, when a master runs and its status file lists the columns of
    its last good read, it lacks any of those (a migration is probably under way; the master would
    not trust that read either). With no master to compare with, other missing columns are fine:
    none of them changes a retention.
    """
    if RETENTION_COLUMN not in columns:
        return f"table 'cameras' has no column {RETENTION_COLUMN}: no retention is known (migration under way?)"
    master = _master_columns(state_dir) if state_dir is not None else None
    if master is None:
        return None
    pid, known = master
    lost = known - columns
    if lost:
        return (f"table 'cameras' lacks column(s) {', '.join(sorted(lost))} that the running master "
                f"(pid {pid}) last read; a migration is probably under way")
    return None


def _master_columns(state_dir: Path) -> tuple[int, frozenset[str]] | None:
    """The running master's pid and the columns of its last good read, if it publishes them."""
    from ..plumbing.daemon import running_master
    from ..plumbing.status_file import read_status

    pid = running_master(Path(state_dir))
    if pid is None:
        return None
    master = (read_status(Path(state_dir)) or {}).get("master")
    if not isinstance(master, dict) or master.get("pid") != pid:
        return None
    columns = master.get("columns")
    if not isinstance(columns, list) or not all(isinstance(name, str) for name in columns):
        return None
    return pid, frozenset(columns)


def clock_unset(now: float) -> str | None:
    """Why ``now`` is not a set clock, or None."""
    if now >= PLAUSIBLE_SINCE:
        return None
    return f"the system clock reads {utc(now)}, before {utc(PLAUSIBLE_SINCE)}: it is not set"


def corroborated(segment: Segment) -> bool:
    """Name and mtime agree: two stamps from the clock of the moment the segment was written."""
    return segment.mtime >= PLAUSIBLE_SINCE and abs(segment.mtime - segment.start) <= CLOCK_TOLERANCE


def plausible(segment: Segment, now: float) -> bool:
    """An mtime that retention may be computed from (see the module docstring)."""
    return PLAUSIBLE_SINCE <= segment.mtime <= now + CLOCK_TOLERANCE and segment.mtime >= segment.start - CLOCK_TOLERANCE


def clock_went_back(footage: Footage, now: float) -> str | None:
    """Why the clock cannot be believed, judged by the newest segment it stamped itself."""
    newest: tuple[float, str] | None = None
    for camera, segments in footage:
        for segment in segments:
            if corroborated(segment) and (newest is None or segment.mtime > newest[0]):
                newest = (segment.mtime, f"{camera.id}/{segment.name}")
    if newest is None or newest[0] <= now + CLOCK_TOLERANCE:
        return None
    return (f"the system clock reads {utc(now)}, {(newest[0] - now) / 86400:.1f} days before the mtime of "
            f"segment {newest[1]}: the clock went backwards (move that segment aside if it is wrong)")


class FootageCutoff:
    """For a retention R: the latest mtime before which some camera recorded R of footage.

    Per camera, the mtimes of its believable segments, newest first; ``k`` segments of ``s``
    seconds are at least ``k * s`` seconds of real time whatever the clock said. A camera's
    ``segment_seconds`` is its current setting: a longer old one only keeps more files.
    """

    def __init__(self, footage: Footage, now: float) -> None:
        self._histories = []
        for camera, segments in footage:
            mtimes = sorted((s.mtime for s in segments if plausible(s, now)), reverse=True)
            if mtimes:
                seconds = camera.segment_seconds
                seconds = seconds if isinstance(seconds, int) and seconds >= MIN_SEGMENT_SECONDS else MIN_SEGMENT_SECONDS
                self._histories.append((mtimes, float(seconds)))
        self._cache: dict[float, float] = {}

    def __call__(self, hours: float) -> float:
        if hours not in self._cache:
            self._cache[hours] = max((self._cutoff(mtimes, seconds, hours) for mtimes, seconds in self._histories),
                                     default=-math.inf)
        return self._cache[hours]

    @staticmethod
    def _cutoff(mtimes: list[float], seconds: float, hours: float) -> float:
        needed = hours * SECONDS_PER_HOUR / seconds  # segments that make up ``hours`` of footage
        if needed > len(mtimes):
            return -math.inf
        return mtimes[max(1, math.ceil(needed)) - 1]


def utc(moment: float) -> str:
    """``2026-11-23 08:00:00Z``, or the number itself when it names no representable moment."""
    try:
        return datetime.datetime.fromtimestamp(moment, datetime.UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    except (OverflowError, OSError, ValueError):
        return repr(moment)
