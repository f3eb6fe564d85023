"""Coverage: which seconds of a time window the mirror holds playable footage for, per camera.

The files are the truth and the index (:mod:`index`) a cache of what parsing them said: for every
segment file in the window, a row of the index whose size and mtime match the file is used as is;
any other file (no row: the index is missing, new, or was deleted; or a row that no longer
matches) is parsed (:mod:`mp4`) and its row written back when the index can be written ("cold"
mode; many files are parsed by a pool of processes, one per core). Rows of files that are gone are
never used. Nothing here reads the NVR's database or talks to the daemon.

A segment covers ``[start, start + duration]``: ``start`` from its name (UTC, 1 s resolution),
``duration`` its playable seconds. Because names are whole seconds and a segment's first frame
falls anywhere in its second, neighbouring segments seem to overlap or leave holes of up to 1 s;
so holes no longer than the tolerance (default 2 s) count as covered, and every longer hole is a
gap. A segment that starts before the window counts only when it is the last one before it (one
ffmpeg per camera at a time: segments follow each other).

With a primary directory (the NVR's own recordings, same layout), the same is computed for it and
the two compared: seconds only in the primary (what would be lost if the mirror were all that was
left), only in the mirror (what the mirror saved), and in both.
"""

from __future__ import annotations

import datetime
import math
import os
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from . import mp4
from .camera import is_safe_id
from .index import MIRROR, IndexError_, Row, SegmentIndex, row_from
from .segments import SEGMENT_OR_MOVED

DEFAULT_TOLERANCE = 2.0
IN_PROGRESS_SECONDS = 60.0  # the newest segment, changed this recently, may still be starting
POOL_THRESHOLD = 400  # parse in a process pool from this many files on
PREFETCH_BATCH = 128  # files whose heads and tails are asked for at once
_KEY = "%Y%m%d_%H%M%S"

Interval = tuple[float, float]


@dataclass
class Gap:
    start: float
    end: float

    @property
    def seconds(self) -> float:
        return self.end - self.start


@dataclass
class PrimaryComparison:
    only_primary_seconds: float
    only_mirror_seconds: float
    both_seconds: float


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
    first_start: float | None = None  # the earliest segment considered (maybe before the window)

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


# -- time -------------------------------------------------------------------------------------

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_span(text: str) -> float:
    """``90s``, ``30m``, ``24h``, ``7d``, ``1w``, or bare seconds; ValueError otherwise."""
    text = text.strip().lower()
    unit = _UNITS.get(text[-1:]) if text else None
    number = text[:-1] if unit else text
    value = float(number) * (unit or 1)
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"not a positive duration: {text!r}")
    return value


def parse_time(text: str) -> float:
    """RFC 3339 (``2026-11-25T10:00:00Z``, an offset, or a space for the T); no zone means UTC."""
    moment = datetime.datetime.fromisoformat(text.strip().replace("z", "Z"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    return moment.timestamp()


def rfc3339(epoch: float) -> str:
    moment = datetime.datetime.fromtimestamp(epoch, datetime.UTC)
    if moment.microsecond:
        return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _key(epoch: float) -> str:
    """The name prefix of the first whole second at or after ``epoch``."""
    return time.strftime(_KEY, time.gmtime(math.ceil(epoch)))


# -- intervals --------------------------------------------------------------------------------

def merge(intervals: Iterable[Interval], tolerance: float) -> list[Interval]:
    """Union of intervals, joining those separated by at most ``tolerance``."""
    merged: list[list[float]] = []
    for start, end in sorted(intervals):
        if merged and start <= merged[-1][1] + tolerance:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return [(a, b) for a, b in merged]


def clip(intervals: Iterable[Interval], start: float, end: float, tolerance: float) -> list[Interval]:
    """Intervals cut to the window; an edge within ``tolerance`` of the window's is moved onto it."""
    out = []
    for a, b in intervals:
        a, b = max(a, start), min(b, end)
        if b <= a:
            continue
        out.append((start if a - start <= tolerance else a, end if end - b <= tolerance else b))
    return out


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


def gaps_of(covered: Sequence[Interval], start: float, end: float) -> list[Gap]:
    gaps, at = [], start
    for a, b in covered:
        if a > at:
            gaps.append(Gap(at, a))
        at = max(at, b)
    if end > at:
        gaps.append(Gap(at, end))
    return gaps


# -- files and the index ----------------------------------------------------------------------

@dataclass
class _Listed:
    name: str
    size: int
    mtime_ns: int


@dataclass
class _Camera:
    id: str
    directory: Path
    root: str
    listed: list[_Listed] = field(default_factory=list)
    rows: dict[str, Row] = field(default_factory=dict)
    problem: str | None = None


def list_window(directory: Path, start: float, end: float) -> list[_Listed]:
    """Segment files (regular, real names) starting in ``[start, end)``, and the last one before."""
    low, high = _key(start), _key(end)
    inside: list[_Listed] = []
    before: os.DirEntry[str] | None = None
    with os.scandir(directory) as entries:
        for entry in entries:
            name = entry.name
            key = name[:15]
            if key >= high or not SEGMENT_OR_MOVED.fullmatch(name):
                continue
            if key < low:
                if before is None or name > before.name:
                    before = entry
                continue
            info = entry.stat(follow_symlinks=False)
            if entry.is_file(follow_symlinks=False):
                inside.append(_Listed(name, info.st_size, info.st_mtime_ns))
    if before is not None and before.is_file(follow_symlinks=False):
        info = before.stat(follow_symlinks=False)
        inside.append(_Listed(before.name, info.st_size, info.st_mtime_ns))
    inside.sort(key=lambda item: item.name)
    return inside


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


def probe_all(paths: list[str], pool: bool = True) -> list[mp4.SegmentInfo]:
    """Parse files in batches (:func:`probe_batch`), in a pool of processes (one per core) when
    there are many."""
    batches = [paths[i:i + PREFETCH_BATCH] for i in range(0, len(paths), PREFETCH_BATCH)]
    workers = min(len(os.sched_getaffinity(0)), 8)
    if not pool or len(paths) < POOL_THRESHOLD or workers < 2:
        return [info for batch in batches for info in probe_batch(batch)]
    import multiprocessing

    with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("fork")) as executor:
        return [info for infos in executor.map(probe_batch, batches) for info in infos]


def _open_index(mirror_dir: Path, notes: list[str]) -> SegmentIndex | None:
    """The index for writing, else for reading, else none (every file is parsed then)."""
    try:
        return SegmentIndex(mirror_dir, write=True)
    except IndexError_ as write_error:
        try:
            return SegmentIndex(mirror_dir, write=False)
        except IndexError_:
            notes.append(f"no usable segment index ({write_error}); every file was read")
            return None


def _load(cameras: list[_Camera], index: SegmentIndex | None, start: float, end: float, notes: list[str],
          pool: bool = True) -> int:
    """List every camera's files and read its rows; parse what the index does not know; write back.
    Returns how many files were parsed."""
    for cam in cameras:
        try:
            cam.listed = list_window(cam.directory, start, end)
        except FileNotFoundError:
            cam.problem = f"no directory {cam.directory}"
            continue
        except OSError as exc:
            cam.problem = f"cannot list {cam.directory}: {exc.strerror or exc}"
            continue
        if index is not None and cam.listed:
            try:
                cam.rows = index.rows(cam.id, cam.listed[0].name, cam.listed[-1].name + "\x7f", cam.root)
            except IndexError_ as exc:
                notes.append(str(exc))
    stale = [(cam, item) for cam in cameras for item in cam.listed
             if not _fresh(cam.rows.get(item.name), item)]
    infos = probe_all([str(cam.directory / item.name) for cam, item in stale], pool)
    fresh: dict[int, list[Row]] = {}
    for (cam, item), info in zip(stale, infos, strict=True):
        row = row_from(item.name, info)
        if row is not None:
            cam.rows[item.name] = row
            fresh.setdefault(id(cam), []).append(row)
    if index is not None and index.writable:
        for cam in cameras:
            rows = [r for r in fresh.get(id(cam), []) if r.size > 0]
            try:
                index.put(cam.id, rows, cam.root)
            except IndexError_ as exc:
                notes.append(str(exc))
                break
    return len(stale)


def _fresh(row: Row | None, item: _Listed) -> bool:
    return row is not None and row.size == item.size and row.mtime_ns == item.mtime_ns


def _intervals(cam: _Camera, start: float, end: float, tolerance: float, now: float) -> tuple[list[Interval], list[str]]:
    spans, invalid = [], []
    newest = cam.listed[-1].name if cam.listed else None
    for item in cam.listed:
        row = cam.rows.get(item.name)
        if row is None:
            continue
        if row.playable and row.duration > 0:
            spans.append((row.start, row.start + row.duration))
        elif not (item.name == newest and item.mtime_ns / 1e9 >= now - IN_PROGRESS_SECONDS) and row.start >= start:
            invalid.append(item.name)
    return clip(merge(spans, tolerance), start, end, tolerance), invalid


# -- the computation --------------------------------------------------------------------------

def camera_ids(mirror_dir: Path) -> list[str]:
    """Camera directories in the mirror: safe names only (no hidden ones, no lost+found)."""
    ids = []
    with os.scandir(mirror_dir) as entries:
        for entry in entries:
            if is_safe_id(entry.name) and not entry.name.startswith(".") and entry.is_dir(follow_symlinks=False):
                ids.append(entry.name)
    return sorted(ids)


def compute(mirror_dir: Path, start: float, end: float, cameras: Sequence[str] | None = None,
            primary_dir: Path | None = None, tolerance: float = DEFAULT_TOLERANCE,
            now: float | None = None, use_index: bool = True, pool: bool = True) -> Report:
    """Coverage of ``[start, end)`` per camera (all camera directories of the mirror by default)."""
    now = time.time() if now is None else now
    mirror_dir = Path(mirror_dir)
    ids = list(cameras) if cameras else camera_ids(mirror_dir)
    report = Report([], start, end)
    index = _open_index(mirror_dir, report.notes) if use_index else None
    try:
        mirror = [_Camera(cid, mirror_dir / cid, MIRROR) for cid in ids]
        primary: list[_Camera] = []
        if primary_dir is not None:
            root = str(Path(primary_dir).resolve())
            primary = [_Camera(cid, Path(primary_dir) / cid, root) for cid in ids]
        report.parsed = _load(mirror + primary, index, start, end, report.notes, pool)
    finally:
        if index is not None:
            index.close()
    for i, cam in enumerate(mirror):
        spans, invalid = _intervals(cam, start, end, tolerance, now)
        first = next((row.start for item in cam.listed if (row := cam.rows.get(item.name)) is not None), None)
        result = CameraCoverage(cam.id, start, end, total(spans), gaps_of(spans, start, end), invalid,
                                len(cam.listed), cam.problem, first_start=first)
        if primary:
            other, _ = _intervals(primary[i], start, end, tolerance, now)
            both = total(intersect(spans, other))
            result.primary = PrimaryComparison(total(other) - both, result.covered_seconds - both, both)
            if primary[i].problem:
                result.problem = "; ".join(p for p in (result.problem, f"primary: {primary[i].problem}") if p)
        report.cameras.append(result)
    return report
