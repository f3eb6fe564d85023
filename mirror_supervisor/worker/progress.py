"""What ffmpeg is getting to disk, and whether the wall clock can be trusted to name it.

Kept apart from the worker's loop (:mod:`worker`), which decides what to do with these answers
(a stall, a move-aside), and usable by other processes (the pruner keeps the file ffmpeg has open).

Progress. Whether ffmpeg is recording is judged by the file it actually has open
(``/proc/<ffmpeg>/fd``, only ``.mp4`` files directly in the camera directory, :class:`OpenSegment`)
and that file's size growing, timed with ``time.monotonic``: no wall clock and no directory scan,
so a clock step can neither fake a stall nor hide one, and a check costs the same with 43,200
segments as with one.

The clock. ffmpeg names segments by the wall clock and truncates a file whose name it reuses, so
the worker moves aside segments named in the future (``segments.move_aside_future``) whenever
:class:`ClockWatch` sees the wall clock stepped back against the monotonic clock. A step back of
less than ``CLOCK_STEP_TOLERANCE`` is not noticed until it accumulates.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..footage import segments

CLOCK_STEP_TOLERANCE = 0.5  # NTP slewing moves the offset by at most 0.5 ms/s
LOGGED_MOVES = 20  # a move-aside log line names every file up to this many, then first/last
PROC_ROOT = "/proc"


@dataclass(frozen=True)
class Progress:
    """What ffmpeg is writing right now: the open segment's name, identity and size."""

    segment: str | None = None
    inode: tuple[int, int] | None = None
    size: int = -1


class OpenSegment:
    """Finds the ``.mp4`` a process has open directly in ``directory``, via ``/proc/<pid>/fd``.

    Costs a readlink and a stat while the same descriptor stays on a segment; the descriptor
    table (a dozen entries for ffmpeg) is listed again only when it moved on. The size comes from
    the open file itself, so it is right even if the name was changed under ffmpeg. A file that
    was deleted while open does not count: what it receives never reaches the mirror.
    A ``--ffmpeg`` wrapper script must ``exec`` ffmpeg for its file to be seen here.
    """

    def __init__(self, pid: int, directory: Path, proc_root: str = PROC_ROOT) -> None:
        self._fd_dir = f"{proc_root}/{pid}/fd"
        self._directory = os.path.realpath(directory)
        self._fd: str | None = None

    def read(self) -> Progress:
        if self._fd is not None:
            found = self._look(self._fd)
            if found is not None:
                return found
            self._fd = None
        try:
            fds = os.listdir(self._fd_dir)
        except OSError:
            return Progress()
        for fd in fds:
            found = self._look(fd)
            if found is not None:
                self._fd = fd
                return found
        return Progress()

    def _look(self, fd: str) -> Progress | None:
        path = f"{self._fd_dir}/{fd}"
        try:
            target = os.readlink(path)
        except OSError:
            return None
        directory, name = os.path.split(target)
        if directory != self._directory or not name.endswith(".mp4"):
            return None
        try:
            info = os.stat(path)
        except OSError:
            return None
        return Progress(name, (info.st_dev, info.st_ino), info.st_size)


class ClockWatch:
    """Notices the wall clock stepping back, from the offset between wall and monotonic clocks.

    The offset is compared with the highest one seen since the last step, so a series of small
    steps back adds up instead of each slipping under the tolerance. Steps forward are harmless
    (names only move away from existing ones) and are not reported.
    """

    def __init__(self, tolerance: float = CLOCK_STEP_TOLERANCE,
                 wall: Callable[[], float] = time.time, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._tolerance = tolerance
        self._wall = wall
        self._monotonic = monotonic
        self._high = wall() - monotonic()

    def stepped_back(self) -> float:
        """Seconds the clock went back since the last call that returned a step, else 0."""
        offset = self._wall() - self._monotonic()
        if offset < self._high - self._tolerance:
            step, self._high = self._high - offset, offset
            return step
        self._high = max(self._high, offset)
        return 0.0


def describe_moves(moves: list[tuple[str, str]], limit: int = LOGGED_MOVES) -> str:
    """``a -> a~1, b -> b~1``; a long list keeps its first and last entries and the count between."""
    parts = [f"{old} -> {new}" for old, new in moves]
    if len(parts) > limit:
        half = limit // 2
        parts = [*parts[:half], f"... {len(parts) - 2 * half} more ...", *parts[-half:]]
    return ", ".join(parts)



class NameGuard:
    """Keeps ffmpeg from ever reaching an existing segment name: ffmpeg truncates a file whose
    name it reuses, and names come from the wall clock, which can be stepped back.

    Before a start, segments named more than ``segments.MAX_CLOCK_SKEW_WAIT`` ahead are moved
    aside and the start waits for the second of the newest remaining name to pass. While ffmpeg
    runs, a step back moves aside every segment now named in the future but the open one, and the
    open one follows when ffmpeg moves on from it. Only ``<mirror_dir>/<id>`` is ever created,
    never its parents: a mirror volume that is gone is not re-created on the root filesystem.
    """

    def __init__(self, directory: Path, log: Any) -> None:
        self.directory, self.log = directory, log
        self.segment: str | None = None  # the file ffmpeg writes, or last wrote
        self.problem: str | None = None  # the last failure to look or to move footage aside

    def before_start(self) -> tuple[str | None, float]:
        """(why the directory is not usable, or None; seconds to wait before ffmpeg may start)."""
        directory = self.directory
        if not directory.parent.is_dir():
            return f"mirror directory {directory.parent} is missing (volume not mounted?); not creating it", 0.0
        try:
            directory.mkdir(exist_ok=True)
        except OSError as exc:
            return f"cannot create camera directory {directory}: {exc.strerror or exc}", 0.0
        if not directory.is_dir():
            return f"camera directory {directory} is not a directory", 0.0
        if not self.move_aside("found before starting ffmpeg", keep=None, ahead=segments.MAX_CLOCK_SKEW_WAIT):
            return self.problem, 0.0
        try:
            newest = segments.newest_of(segments.segment_names(directory),
                                        not_after=time.time() + segments.MAX_CLOCK_SKEW_WAIT)
        except OSError as exc:
            return f"cannot list camera directory {directory}: {exc.strerror or exc}", 0.0
        wait = segments.wait_before_start(newest[1] if newest else None, time.time())
        if wait > 1.0:
            self.log.warning("waiting %.1fs before starting ffmpeg: segment %s is named ahead of the clock",
                             wait, newest[0] if newest else "?")
        return None, max(0.0, wait)

    def follow(self, segment: str | None, stepped_back: float) -> bool:
        """After a check: clear ffmpeg's way after a step back; True when it moved on to a new file."""
        if stepped_back:
            self.move_aside(f"wall clock stepped back {stepped_back:.1f}s", keep=segment)
        if segment is None or segment == self.segment:
            return False
        previous, self.segment = self.segment, segment
        start = segments.parse_name(previous) if previous else None
        if start is not None and start > time.time():
            self.move_aside("ffmpeg closed a segment named in the future", keep=segment)
        return True

    def move_aside(self, reason: str, keep: str | None, ahead: float = 0.0) -> bool:
        """Move aside every segment named over ``ahead`` s in the future but ``keep``; False
        (the reason in :attr:`problem`) only when the directory cannot be listed."""
        try:
            moved, failed = segments.move_aside_future(self.directory, time.time() + ahead, keep)
        except OSError as exc:
            self.problem = f"cannot list camera directory {self.directory}: {exc.strerror or exc}"
            return False
        if moved:
            self.log.warning("moved aside %d segments named in the future (%s): %s",
                             len(moved), reason, describe_moves(moved))
        if failed:
            self.problem = f"cannot move aside segments named in the future ({reason}): " + "; ".join(failed)
            self.log.error("%s", self.problem)
        return True
