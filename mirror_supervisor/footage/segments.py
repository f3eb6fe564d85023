"""Segment files: ``<mirror_dir>/<camera_id>/YYYYmmdd_HHMMSS.mp4``, named by ffmpeg in UTC.

Names have one-second resolution, and ffmpeg silently truncates (``O_TRUNC``) a file whose name it
reuses. Two rules keep it from ever reusing one:

- a new ffmpeg never starts in a second that already has a segment: the worker waits until the
  clock has passed the newest name, if that is at most ``MAX_CLOCK_SKEW_WAIT`` ahead
  (:func:`wait_before_start`);
- a segment named further in the future (the wall clock was stepped back, e.g. NTP fixing a wrong
  boot clock), or any future name while ffmpeg runs (it cannot be waited for then), would be
  reused once the clock gets there, so it is *moved aside* to
  ``YYYYmmdd_HHMMSS~N.mp4`` (N = 1, 2, ... the first free one) before ffmpeg could reach its name
  (:func:`move_aside_future`). The moved name keeps the original time, cannot be produced by
  ffmpeg's pattern, and is never overwritten: the move is a hard link that fails if the target
  exists, then an unlink of the old name.

:data:`SEGMENT_NAME` matches only ffmpeg's own names (what ffmpeg may truncate); retention must
also recognise moved-aside footage, with :data:`SEGMENT_OR_MOVED` (its first two groups are the
date and time, for :func:`name_epoch`).
"""

from __future__ import annotations

import datetime
import errno
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

SEGMENT_NAME = re.compile(r"([0-9]{8})_([0-9]{6})\.mp4")
# A segment moved aside because its name lay in the future: ``20261125_110000~1.mp4``.
MOVED_NAME = re.compile(r"([0-9]{8})_([0-9]{6})~([1-9][0-9]{0,5})\.mp4")
SEGMENT_OR_MOVED = re.compile(r"([0-9]{8})_([0-9]{6})(?:~[1-9][0-9]{0,5})?\.mp4")
MAX_MOVED_SUFFIX = 999_999
# Before a start, names at most this far ahead of the clock are waited out (they keep their
# names; the gap is short and logged); names further ahead are moved aside instead.
MAX_CLOCK_SKEW_WAIT = 5.0


def name_epoch(date: str, clock: str) -> float | None:
    """The UTC second a name's YYYYmmdd and HHMMSS parts encode, or None when no real moment."""
    try:
        moment = datetime.datetime(int(date[:4]), int(date[4:6]), int(date[6:]),
                                   int(clock[:2]), int(clock[2:4]), int(clock[4:]), tzinfo=datetime.UTC)
    except ValueError:
        return None
    return moment.timestamp()


def parse_name(name: str) -> float | None:
    """The UTC start second encoded in an ffmpeg segment name, or None for any other name.

    Parsed by hand rather than with time.strptime, which imports ``_strptime`` and its regexes
    lazily: in every forked worker that was a few hundred KiB of private memory, and 20 us a call.
    """
    match = SEGMENT_NAME.fullmatch(name)
    return None if match is None else name_epoch(*match.groups())


def segment_names(directory: Path | int) -> list[str]:
    """ffmpeg-pattern names of regular files directly inside ``directory`` (raises OSError)."""
    names = []
    with os.scandir(directory) as entries:
        for entry in entries:
            if SEGMENT_NAME.fullmatch(entry.name) and entry.is_file(follow_symlinks=False):
                names.append(entry.name)
    return names


def newest_of(names: Iterable[str], not_after: float | None = None) -> tuple[str, float] | None:
    """The newest (name, start second) among ``names`` with a real date, optionally not after a time."""
    best: tuple[str, float] | None = None
    for name in names:
        start = parse_name(name)
        if start is None or (not_after is not None and start > not_after):
            continue
        if best is None or name > best[0]:
            best = (name, start)
    return best


def newest(directory: Path) -> tuple[str, float] | None:
    """The newest segment (name, start second) directly inside ``directory``, or None.

    Only regular files with a real date count, so a stray ``20261399_999999.mp4`` (or a
    directory of that name) can neither hide the real newest segment nor pose as one.
    """
    try:
        return newest_of(segment_names(directory))
    except OSError:
        return None


@dataclass
class NewestCache:
    """:func:`newest` that rescans a directory only when its ``st_mtime_ns`` changed.

    Creating, renaming or deleting a file changes the directory's mtime; writing into one does
    not, and does not change which name is newest. One ``stat`` per call instead of a scan of
    43,200 names (30 days of one-minute segments).
    """

    _seen: dict[Path, tuple[int, tuple[str, float] | None]] = field(default_factory=dict)

    def newest(self, directory: Path) -> tuple[str, float] | None:
        try:
            mtime_ns = os.stat(directory).st_mtime_ns
        except OSError:
            self._seen.pop(directory, None)
            return None
        cached = self._seen.get(directory)
        if cached is not None and cached[0] == mtime_ns:
            return cached[1]
        found = newest(directory)
        self._seen[directory] = (mtime_ns, found)
        return found


def wait_before_start(newest_start: float | None, now: float) -> float:
    """Seconds to wait so that the first segment ffmpeg opens cannot take an existing name.

    ffmpeg opens its first segment no earlier than it is started, so starting at or after
    ``newest_start + 1`` is enough. Names further than ``MAX_CLOCK_SKEW_WAIT`` ahead are moved
    aside before this is asked, so the wait never exceeds ``MAX_CLOCK_SKEW_WAIT + 1``.
    """
    if newest_start is None:
        return 0.0
    wait = newest_start + 1.0 - now
    if wait <= 0 or wait > MAX_CLOCK_SKEW_WAIT + 1.0:
        return 0.0
    return wait


def future_names(names: Iterable[str], now: float, keep: str | None = None) -> list[str]:
    """ffmpeg-pattern names whose start second lies after ``now``, but ``keep`` (sorted)."""
    return sorted(n for n in names if n != keep and (start := parse_name(n)) is not None and start > now)


def move_aside(directory: Path, name: str) -> str:
    """Rename ``name`` to the first free ``<stem>~N.mp4``; never replaces an existing file.

    A hard link fails with EEXIST instead of replacing, so even a file created meanwhile under
    the target name is safe. On a filesystem without hard links, a rename to a name checked free
    just before is the fallback (only this worker writes into the directory).
    """
    stem = name[: -len(".mp4")]
    for suffix in range(1, MAX_MOVED_SUFFIX + 1):
        target = f"{stem}~{suffix}.mp4"
        try:
            os.link(directory / name, directory / target, follow_symlinks=False)
        except FileExistsError:
            continue
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK, errno.EXDEV):
                raise
            if os.path.lexists(directory / target):
                continue
            os.rename(directory / name, directory / target)
            return target
        os.unlink(directory / name)
        return target
    raise OSError(errno.EEXIST, f"no free moved-aside name for {name}")


def move_aside_future(directory: Path, now: float, keep: str | None = None) -> tuple[list[tuple[str, str]], list[str]]:
    """Move aside every segment named after ``now`` except ``keep`` (the file ffmpeg writes).

    Returns the moves done (old, new) and the failures as ``"name: reason"`` texts; raises
    OSError only when the directory cannot be listed.
    """
    moved, failed = [], []
    for name in future_names(segment_names(directory), now, keep):
        try:
            moved.append((name, move_aside(directory, name)))
        except FileNotFoundError:
            continue  # gone meanwhile (pruned): nothing left to protect
        except OSError as exc:
            failed.append(f"{name}: {exc.strerror or exc}")
    return moved, failed
