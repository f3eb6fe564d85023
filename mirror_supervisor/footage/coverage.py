"""Coverage: which seconds of a time window the mirror holds playable footage for, per camera.

The files are the truth and the index (:mod:`index`) a cache of what parsing them said: for every
segment file in the window, a row of the index whose size and mtime match the file is used as is;
any other file (no row: the index is missing, new, or was deleted; or a row that no longer
matches) is parsed (:mod:`mp4`) and its row written back when the index can be written ("cold"
mode; many files are parsed by a pool of processes, one per core). Rows of files that are gone are
never used. Nothing here reads the NVR's database or talks to the daemon.

Which files are in the window is found without listing a camera's whole history
(:mod:`coverage_files`): the index's rows in the window, every file looked up by name, and every
second the files found leave uncovered looked up by name too; a window too long for that is
listed. The NVR's primary directory (``--primary-dir``) is listed.

A segment covers ``[start, start + duration]``: ``start`` from its name (UTC, 1 s resolution),
``duration`` its playable seconds, but never past what wall-clock time allows (:mod:`timing`:
the file's mtime, the next segment's start, the longest segment); a segment cut to those bounds
is reported (``clamped``). Because names are whole seconds and a segment's first frame
falls anywhere in its second, neighbouring segments seem to overlap or leave holes of up to 1 s;
so holes no longer than the tolerance (default 2 s) count as covered, and every longer hole is a
gap. A segment that starts before the window counts only when it is the last one before it (one
ffmpeg per camera at a time: segments follow each other).

With a primary directory (the NVR's own recordings, same layout), the same is computed for it and
the two compared: seconds only in the primary (what would be lost if the mirror were all that was
left), only in the mirror (what the mirror saved), and in both.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..cameras.camera import is_safe_id
from ..plumbing import lifeline
from . import coverage_files, mp4, timing
from .coverage_files import CameraFiles, Listed
from .index import MIRROR, IndexError_, Row, SegmentIndex, row_from
from .intervals import Gap, Interval, covered, gaps_of, intersect, total

DEFAULT_TOLERANCE = 2.0
IN_PROGRESS_SECONDS = 60.0  # the newest segment, changed this recently, may still be starting
POOL_THRESHOLD = 400  # parse in a process pool from this many files on
PREFETCH_BATCH = 128  # files whose heads and tails are asked for at once


@dataclass
class PrimaryComparison:
    only_primary_seconds: float
    only_mirror_seconds: float
    both_seconds: float
    clamped: list[timing.Clamp] = field(default_factory=list)  # the primary's files not believed
    spans: list[Interval] = field(default_factory=list)  # the primary's covered stretches (the timeline's)


@dataclass
class CameraCoverage:
    id: str
    start: float
    end: float
    covered_seconds: float = 0.0
    gaps: list[Gap] = field(default_factory=list)
    invalid: list[str] = field(default_factory=list)
    segments: int = 0
    problem: str | None = None  # e.g. the camera directory is missing
    primary: PrimaryComparison | None = None
    first_start: float | None = None  # the earliest footage known: maybe before the window
    clamped: list[timing.Clamp] = field(default_factory=list)  # files whose own timing was not believed
    spans: list[Interval] = field(default_factory=list)  # the covered stretches, which the gaps lie between

    @property
    def coverage(self) -> float:
        window = self.end - self.start
        return self.covered_seconds / window if window > 0 else 1.0

    @property
    def coverage_since_first(self) -> float:
        """Coverage from the camera's first footage on, when that lies inside the window: a camera
        mirrored for ten minutes is not "83 % missing" of the last hour. 0 with no footage at all;
        a gap after the first segment (an outage, a master restart) counts in full."""
        if self.first_start is None:
            return 0.0
        window = self.end - max(self.start, self.first_start)
        return min(1.0, self.covered_seconds / window) if window > 0 else 1.0


@dataclass
class Report:
    cameras: list[CameraCoverage]
    start: float
    end: float
    parsed: int = 0  # files parsed (not served from the index)
    notes: list[str] = field(default_factory=list)
    looked_up: int = 0  # names looked up one by one (files named by the index, and the stretches it leaves)
    listed: int = 0  # camera directories listed in full


# -- parsing ----------------------------------------------------------------------------------

def probe_batch(paths: list[str]) -> list[mp4.SegmentInfo]:
    """Parse files, asking the kernel first for every file's head and tail at once: on a cold
    disk the reads are then in flight together instead of one after another."""
    for path in paths:
        try:
            fd, _ = mp4.open_segment(path)
        except OSError:
            continue  # mp4.probe says why
        try:
            size = os.fstat(fd).st_size
            os.posix_fadvise(fd, 0, min(size, mp4.CHUNK), os.POSIX_FADV_WILLNEED)
            if size > mp4.CHUNK:
                os.posix_fadvise(fd, size - mp4.CHUNK, mp4.CHUNK, os.POSIX_FADV_WILLNEED)
        except OSError:
            pass
        finally:
            os.close(fd)
    return [mp4.probe(path) for path in paths]


def _pool_process_starts(parent: int) -> None:
    """In each pool process as it starts. It only reads files, so it dies with the process that
    forked it (SIGKILL, also when that one is killed by SIGKILL and cannot end its pool), and
    leaves SIGINT and SIGTERM to that process, which ends the pool itself."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    lifeline.die_with_parent(parent, signal.SIGKILL)


def probe_all(paths: list[str], pool: bool = True) -> list[mp4.SegmentInfo]:
    """Parse files in batches (:func:`probe_batch`), in a pool of processes (one per core) when
    there are many. When anything interrupts it (an exception, the ``coverage`` command's
    SIGTERM), its processes get SIGKILL and are not waited for: one stuck on a hung volume ends
    only when the volume answers, and the caller must not wait that long."""
    batches = [paths[i:i + PREFETCH_BATCH] for i in range(0, len(paths), PREFETCH_BATCH)]
    workers = min(len(os.sched_getaffinity(0)), 8)
    if not pool or len(paths) < POOL_THRESHOLD or workers < 2:
        return [info for batch in batches for info in probe_batch(batch)]
    import multiprocessing

    before = set(multiprocessing.active_children())
    running = multiprocessing.get_context("fork").Pool(workers, _pool_process_starts, (os.getpid(),))
    try:
        infos = [info for infos in running.imap(probe_batch, batches) for info in infos]
    except BaseException:
        for process in set(multiprocessing.active_children()) - before:
            process.kill()
        raise
    running.terminate()
    return infos


def _open_index(mirror_dir: Path, notes: list[str], write: bool = True) -> SegmentIndex | None:
    """The index for writing (when ``write``), else for reading, else none (every file is parsed then)."""
    try:
        if not write:
            raise IndexError_("not written by this reader")
        return SegmentIndex(mirror_dir, write=True)
    except IndexError_ as write_error:
        try:
            return SegmentIndex(mirror_dir, write=False)
        except IndexError_:
            notes.append(f"no usable segment index ({write_error}); every file was read")
            return None


def _parse(cameras: list[CameraFiles], fresh: dict[str, list[Row]], pool: bool) -> int:
    """Parse every file without a row that matches it; keep the new rows (``fresh``, by camera
    directory) for the index. Returns how many files were parsed."""
    stale = [(cam, i) for cam in cameras for i, item in enumerate(cam.listed)
             if type(item) is Listed and not _fresh(cam.rows.get(item.name), item)]  # a Row stands for its file
    infos = probe_all([str(cam.directory / cam.listed[i].name) for cam, i in stale], pool)
    for (cam, i), info in zip(stale, infos, strict=True):
        row = row_from(cam.listed[i].name, info)
        if row is not None:
            cam.rows[row.name] = row
            fresh.setdefault(str(cam.directory), []).append(row)
            cam.listed[i] = row  # its size and mtime as parsed: it may have changed since the stat
    return len(stale)


def _list(cam: CameraFiles, index: SegmentIndex | None, start: float, end: float, notes: list[str]) -> None:
    """A listing of the camera's directory for the window, and the index's rows for its files."""
    try:
        cam.listed = coverage_files.list_window(cam.directory, start, end)
    except FileNotFoundError:
        cam.problem = f"no directory {cam.directory}"
        return
    except OSError as exc:
        cam.problem = f"cannot list {cam.directory}: {exc.strerror or exc}"
        return
    if index is not None and cam.listed:
        try:
            cam.rows = index.rows(cam.id, cam.listed[0].name, cam.listed[-1].name + "\x7f", cam.root)
        except IndexError_ as exc:
            notes.append(str(exc))


def _load(mirror: list[CameraFiles], primary: list[CameraFiles], index: SegmentIndex | None, start: float,
          end: float, tolerance: float, now: float, report: Report, pool: bool) -> None:
    """Find every camera's files for the window (:mod:`coverage_files`), parse what the index does
    not know, write the new rows back."""
    for cam in mirror:
        coverage_files.from_index(cam, index, start, end, report.notes)
    for cam in primary:
        _list(cam, index, start, end, report.notes)
    fresh: dict[str, list[Row]] = {}
    report.parsed = _parse(mirror + primary, fresh, pool)
    for cam in mirror:
        if cam.problem is None and not coverage_files.by_name(cam, start, end, tolerance, now):
            _list_instead(cam, index, start, end, fresh, report)
        report.looked_up += cam.looked_up
        report.listed += cam.listed_names
    report.parsed += _parse(mirror, fresh, pool)
    for cam in mirror:
        coverage_files.older_footage(cam, start)
        missed = [item.name for item in cam.listed[:-1] if item.name not in cam.indexed]
        if index is not None and missed and cam.looked_up:
            report.notes.append(f"{cam.id}: {len(missed)} segments not in the segment index were found by name "
                                f"(the first {missed[0]})")
    if index is not None and index.writable:
        for cam in mirror + primary:
            rows = [r for r in fresh.get(str(cam.directory), []) if r.size > 0]
            try:
                index.put(cam.id, rows, cam.root)
            except IndexError_ as exc:
                report.notes.append(str(exc))
                break


def _list_instead(cam: CameraFiles, index: SegmentIndex | None, start: float, end: float,
                  fresh: dict[str, list[Row]], report: Report) -> None:
    """Too many names to look up one by one: list the directory, keeping the rows parsed so far."""
    report.notes.append(f"{cam.id}: more than {coverage_files.LOOK_UP_LIMIT} seconds of the window are not "
                        "covered by indexed segments; its directory was listed instead of looking names up")
    report.listed += 1
    _list(cam, index, start, end, report.notes)
    cam.rows.update({row.name: row for row in fresh.get(str(cam.directory), [])})
    cam.looked_up = 0


def _fresh(row: Row | None, item: Listed) -> bool:
    return row is not None and row.size == item.size and row.mtime_ns == item.mtime_ns


def _intervals(cam: CameraFiles, start: float, end: float, tolerance: float,
               now: float) -> tuple[list[Interval], list[str], list[timing.Clamp]]:
    """The window's covered stretches, its invalid segments and the segments not believed."""
    longest = timing.LONGEST_SEGMENT if cam.root == MIRROR else None
    spans, clamps = timing.spans(coverage_files.timed(cam), longest)
    invalid, rows = [], cam.rows
    newest = cam.listed[-1].name if cam.listed else None
    for item in cam.listed:
        row = rows.get(item.name)
        if row is None or (row.playable and row.duration > 0):
            continue
        if not (item.name == newest and item.mtime_ns / 1e9 >= now - IN_PROGRESS_SECONDS) and row.start >= start:
            invalid.append(item.name)
    clamps = [c for c in clamps if (row := cam.rows[c.name]).start + row.duration > start]
    return covered(spans, start, end, tolerance), invalid, clamps


# -- the computation --------------------------------------------------------------------------

def camera_ids(mirror_dir: Path) -> list[str]:
    """Camera directories in the mirror: safe names only (no hidden ones, no lost+found)."""
    ids = []
    with os.scandir(mirror_dir) as entries:
        for entry in entries:
            if is_safe_id(entry.name) and not entry.name.startswith(".") and entry.is_dir(follow_symlinks=False):
                ids.append(entry.name)
    return sorted(ids)


def _first_start(cam: CameraFiles) -> float | None:
    first = next((row.start for item in cam.listed if (row := cam.rows.get(item.name)) is not None), None)
    if cam.older is not None:
        return cam.older if first is None else min(first, cam.older)
    return first


def compute(mirror_dir: Path, start: float, end: float, cameras: Sequence[str] | None = None,
            primary_dir: Path | None = None, tolerance: float = DEFAULT_TOLERANCE,
            now: float | None = None, use_index: bool = True, pool: bool = True,
            write_index: bool = True) -> Report:
    """Coverage of ``[start, end)`` per camera (all camera directories of the mirror by default).
    ``write_index=False``: the index is only read, rows of files parsed here are not written
    back (the status page, which writes nothing)."""
    now = time.time() if now is None else now
    mirror_dir = Path(mirror_dir)
    ids = list(cameras) if cameras else camera_ids(mirror_dir)
    report = Report([], start, end)
    index = _open_index(mirror_dir, report.notes, write_index) if use_index else None
    try:
        mirror = [CameraFiles(cid, mirror_dir / cid, MIRROR) for cid in ids]
        primary: list[CameraFiles] = []
        if primary_dir is not None:
            root = str(Path(primary_dir).resolve())
            primary = [CameraFiles(cid, Path(primary_dir) / cid, root) for cid in ids]
        _load(mirror, primary, index, start, end, tolerance, now, report, pool)
    finally:
        if index is not None:
            index.close()
    for i, cam in enumerate(mirror):
        spans, invalid, clamped = _intervals(cam, start, end, tolerance, now)
        result = CameraCoverage(cam.id, start, end, total(spans), gaps_of(spans, start, end), invalid,
                                len(cam.listed), cam.problem, first_start=_first_start(cam), clamped=clamped,
                                spans=spans)
        if primary:
            other, _, other_clamped = _intervals(primary[i], start, end, tolerance, now)
            both = total(intersect(spans, other))
            result.primary = PrimaryComparison(total(other) - both, result.covered_seconds - both, both, other_clamped,
                                               other)
            if primary[i].problem:
                result.problem = "; ".join(p for p in (result.problem, f"primary: {primary[i].problem}") if p)
        report.cameras.append(result)
    return report
