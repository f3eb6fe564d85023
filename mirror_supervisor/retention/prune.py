"""The prune pass: list the mirror, decide every segment by the retention rules, delete.

The NVR does not index the mirror directory, so nothing else ever deletes from it: without this
the mirror volume fills up and recording stops. Whether a segment may go is decided by
:mod:`retention` (its docstring has every rule, including the clock and the database view); what
a pass did is a :class:`~prune_report.PassReport` (:mod:`prune_report`). This module is the file
I/O, which itself errs towards keeping:

- only regular files whose names match :data:`SEGMENT_FILE`, directly inside the directory of a
  camera that is in the camera list; symlinks are never followed (the camera directory itself is
  opened with ``O_NOFOLLOW`` and every unlink is relative to that descriptor, so swapping a
  directory for a symlink mid-pass cannot redirect a deletion), nothing is descended into;
- a camera whose retention cannot be read keeps everything, and so does every *orphaned*
  directory (its camera has left the list, so its retention is unknowable); both are reported;
- the segment a running ffmpeg is writing is never deleted, even when its mtime says it expired
  (a stalled source stops updating it): for a camera with a live ffmpeg (:func:`recorders.recording_now`)
  the file it has open is kept, and so are the newest by name and the newest by mtime.

:func:`prune_pass` only does file I/O so that it can be tested on a temp tree and timed;
:func:`run_pass_for` adds the process table and the master's list; :func:`run_pass` the database
(the hand-run ``prune``); :func:`child_main` is the pruner process the master forks.
"""

from __future__ import annotations

import enum
import errno
import os
import re
import stat
import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ..cameras.camera import COLUMNS, Camera, is_safe_id
from ..cameras.database import DatabaseError, read_table, require_answer
from ..footage.index import forget_pruned
from ..footage.segments import SEGMENT_OR_MOVED, name_epoch
from .orphaned import orphaned_dirs
from .prune_report import CameraPrune, PassReport, log_report
from .recorders import recording_now
from .rules import (
    CLOCK_TOLERANCE,
    RETENTION_COLUMN,
    SECONDS_PER_HOUR,
    FootageCutoff,
    Segment,
    ambiguous_ids,
    clock_unset,
    clock_went_back,
    columns_refusal,
    parse_retention,
    plausible,
)

# The one filter for what counts as a segment file: ffmpeg's names and the ``~N`` names the
# worker moves footage aside to after a clock step (footage too, so it ages out like the rest).
# Its first two groups must capture the UTC date (YYYYmmdd) and time (HHMMSS) the name encodes.
SEGMENT_FILE: re.Pattern[str] = SEGMENT_OR_MOVED

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC


class _Unlink(enum.Enum):
    DELETED = "deleted"
    GONE = "gone"  # vanished between listing and unlink: fine, and not our deletion
    FAILED = "failed"


@dataclass
class _Scan:
    """One camera after the first phase: what is there, nothing deleted yet."""

    camera: Camera
    result: CameraPrune
    dir_identity: tuple[int, int] | None = None  # (st_dev, st_ino) of the directory listed
    segments: list[Segment] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)  # names this pass unlinked (they leave the index)


def prune_pass(
    mirror_dir: Path,
    cameras: list[Camera],
    running: set[str],
    now: float,
    dry_run: bool = False,
    segment_file: re.Pattern[str] = SEGMENT_FILE,
    writing: Mapping[str, Collection[str]] | None = None,
) -> PassReport:
    """Apply retention to the mirror for ``cameras`` (every camera row, mirrored or not).

    Retention belongs to the camera, not to whether it is mirrored right now: a camera whose
    mirroring was switched off still has files in the mirror that must age out. Two phases: every
    camera directory is listed before anything is deleted, because the clock checks and the
    footage cutoff need the whole mirror. ``running`` are the cameras with a live ffmpeg,
    ``writing`` the files those have open, by camera, where known.
    """
    mirror_dir = Path(mirror_dir)
    report = PassReport(mirror_dir=mirror_dir, now=now, dry_run=dry_run, running=frozenset(running))
    report.error = clock_unset(now)
    if report.error is not None:
        return report
    try:
        mirror_fd = os.open(mirror_dir, _DIR_FLAGS)
    except OSError as exc:
        report.error = f"cannot open mirror directory {str(mirror_dir)!r}: {exc.strerror or exc}"
        return report
    try:
        # Listing first: a mirror that cannot be read is found out before anything is deleted.
        try:
            listed = set(os.listdir(mirror_fd))
            report.orphans = orphaned_dirs(mirror_fd, {camera.id for camera in cameras})
        except OSError as exc:
            report.error = f"cannot list mirror directory {str(mirror_dir)!r}: {exc.strerror or exc}"
            return report
        scans = _scan_cameras(mirror_fd, cameras, listed, segment_file)
        report.cameras = [scan.result for scan in scans]
        footage = [(scan.camera, scan.segments) for scan in scans]
        report.error = clock_went_back(footage, now)
        if report.error is not None:
            return report
        cutoff = FootageCutoff(footage, now)
        for scan in scans:
            if scan.result.skipped is None and scan.dir_identity is not None:
                protected = _protected(scan.segments, scan.camera.id in running, (writing or {}).get(scan.camera.id, ()))
                _prune_camera(mirror_fd, scan, protected, now, cutoff, dry_run)
    finally:
        os.close(mirror_fd)
    # Pruned files leave the segment index (a cache: it never decides what is deleted here).
    problem = forget_pruned(mirror_dir, {scan.camera.id: scan.deleted for scan in scans if scan.deleted})
    if problem is not None:
        report.notes.append(problem)
    return report


def run_pass_for(
    cameras: list[Camera] | None,
    mirror_dir: Path,
    now: float | None = None,
    dry_run: bool = False,
    columns: frozenset[str] | None = None,
) -> PassReport:
    """One pass over the camera list the master last read well; never reads the database.

    ``None`` means the master never had a good read: there is no retention to apply. ``columns``
    are the columns of the read that produced ``cameras``, when the caller knows them.
    """
    if now is None:
        now = time.time()
    mirror_dir = Path(mirror_dir)
    if cameras is None:
        error = "no good read of the database yet, so no camera's retention is known"
        return PassReport(mirror_dir=mirror_dir, now=now, dry_run=dry_run, error=error)
    if columns is not None and RETENTION_COLUMN not in columns:
        error = f"the camera list was read from a table without column {RETENTION_COLUMN}; no retention is known"
        return PassReport(mirror_dir=mirror_dir, now=now, dry_run=dry_run, error=error)
    writing = recording_now(mirror_dir)
    return prune_pass(mirror_dir, cameras, set(writing), now, dry_run=dry_run, writing=writing)


def run_pass(
    db: Path, mirror_dir: Path, now: float | None = None, dry_run: bool = False, state_dir: Path | None = None
) -> PassReport:
    """The hand-run pass: reads the database itself, so it applies the master's column rule.

    ``state_dir`` is where a running master's status file is; without it there is no master to
    compare with, and the pass relies on the ``retention_hours`` rule alone. Never raises for bad
    data.
    """
    if now is None:
        now = time.time()
    mirror_dir = Path(mirror_dir)
    try:
        require_answer(db)
        cameras, columns = read_table(db)
    except DatabaseError as exc:
        return PassReport(mirror_dir=mirror_dir, now=now, dry_run=dry_run, error=str(exc))
    refusal = columns_refusal(columns, state_dir)
    if refusal is not None:
        return PassReport(mirror_dir=mirror_dir, now=now, dry_run=dry_run, error=refusal)
    report = run_pass_for(cameras, mirror_dir, now=now, dry_run=dry_run, columns=columns)
    defaulted = sorted(set(COLUMNS) - columns)
    if defaulted:
        report.notes.append(
            f"table 'cameras' has no column(s) {', '.join(defaulted)}; defaults used (none is a retention)"
        )
    return report


def child_main(
    cameras: list[Camera] | None,
    mirror_dir: Path,
    inherited_fds: tuple[int, ...],
    master_pid: int,
    columns: frozenset[str] | None = None,
) -> int:
    """The pruner process, forked by the master: one pass over the master's list, then exit."""
    from ..plumbing import lifeline, titles

    lifeline.become_helper(titles.PRUNE, inherited_fds, master_pid)
    log_report(run_pass_for(cameras, mirror_dir, columns=columns))
    return 0


def _scan_cameras(
    mirror_fd: int, cameras: list[Camera], listed: set[str], segment_file: re.Pattern[str]
) -> list[_Scan]:
    """Phase one: every camera's retention and segment files, once per id, nothing deleted."""
    ambiguous = ambiguous_ids(cameras)
    scans = []
    done: set[str] = set()
    for camera in cameras:
        if camera.id in done:
            continue
        done.add(camera.id)
        scan = _Scan(camera, CameraPrune(camera.id))
        _scan_camera(mirror_fd, scan, listed, ambiguous.get(camera.id), segment_file)
        scans.append(scan)
    return scans


def _scan_camera(
    mirror_fd: int, scan: _Scan, listed: set[str], ambiguity: str | None, segment_file: re.Pattern[str]
) -> None:
    result, camera = scan.result, scan.camera
    if not is_safe_id(camera.id):
        result.skipped = "unsafe id: not a single plain directory name"
        return
    result.retention_hours, reason = parse_retention(camera.retention_hours)
    if ambiguity is not None:
        result.skipped, result.has_dir = ambiguity, camera.id in listed
        return
    try:
        dir_fd = os.open(camera.id, _DIR_FLAGS | os.O_NOFOLLOW, dir_fd=mirror_fd)
    except FileNotFoundError:
        result.skipped = reason
        return
    except OSError as exc:
        result.has_dir = True
        result.skipped = _open_failure(mirror_fd, camera.id, exc)
        return
    result.has_dir = True
    try:
        if camera.id not in listed:
            # Opened, yet not listed under this name: a case-insensitive volume found another.
            result.skipped = "the mirror has its directory only under another letter case"
            return
        result.skipped = reason  # unknown retention: still listed, its footage counts as evidence
        info = os.fstat(dir_fd)
        scan.dir_identity = (info.st_dev, info.st_ino)
        try:
            scan.segments = _list_segments(dir_fd, result, segment_file)
        except OSError as exc:
            scan.dir_identity = None
            result.add_error(f"cannot list camera directory: {exc.strerror or exc}")
    finally:
        os.close(dir_fd)


def _open_failure(mirror_fd: int, name: str, exc: OSError) -> str:
    if exc.errno in (errno.ELOOP, errno.ENOTDIR):
        # Linux answers ENOTDIR, not ELOOP, for a symlink opened with O_DIRECTORY|O_NOFOLLOW.
        if _is_symlink(mirror_fd, name):
            return "camera directory is a symlink; symlinks are never followed"
        return "camera path is not a directory"
    return f"cannot open camera directory: {exc.strerror or exc}"


def _list_segments(dir_fd: int, result: CameraPrune, segment_file: re.Pattern[str]) -> list[Segment]:
    """Regular files named like segments with a real date in the name; nothing else is ours."""
    segments = []
    match = segment_file.fullmatch  # hot loop: 1,440 files a day per camera
    with os.scandir(dir_fd) as entries:
        for entry in entries:
            name = entry.name
            found = match(name)
            if found is None or not name.isascii():
                continue
            start = name_epoch(found.group(1), found.group(2))
            if start is None:
                continue
            try:
                if not entry.is_file(follow_symlinks=False):
                    continue
                info = entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue
            except OSError as exc:
                result.add_error(f"{name}: {exc.strerror or exc}")
                continue
            segments.append(Segment(name, info.st_mtime, info.st_size, start))
    return segments


def _prune_camera(
    mirror_fd: int, scan: _Scan, protected: set[str], now: float, footage: FootageCutoff, dry_run: bool
) -> None:
    """Phase two for one camera: decide every segment, then delete; the newest must be known first."""
    result = scan.result
    assert result.retention_hours is not None
    try:
        dir_fd = os.open(scan.camera.id, _DIR_FLAGS | os.O_NOFOLLOW, dir_fd=mirror_fd)
    except OSError as exc:
        result.add_error(f"cannot open camera directory again: {exc.strerror or exc}")
        return
    try:
        info = os.fstat(dir_fd)
        if (info.st_dev, info.st_ino) != scan.dir_identity:
            result.skipped = "camera directory was replaced during the pass"
            return
        clock_cutoff = now - result.retention_hours * SECONDS_PER_HOUR
        footage_cutoff = footage(result.retention_hours)
        result.jump_suspected = footage_cutoff < clock_cutoff - CLOCK_TOLERANCE
        _delete_expired(dir_fd, scan, protected, now, min(clock_cutoff, footage_cutoff), clock_cutoff, dry_run)
    finally:
        os.close(dir_fd)


def _delete_expired(
    dir_fd: int, scan: _Scan, protected: set[str], now: float, cutoff: float, clock_cutoff: float, dry_run: bool
) -> None:
    result, segments = scan.result, scan.segments
    kept: list[str] = []
    for segment in segments:
        name = segment.name
        if not plausible(segment, now):
            result.implausible_files += 1
        elif segment.mtime < cutoff and name not in protected:
            outcome = _Unlink.DELETED if dry_run else _unlink(dir_fd, name, result)
            if outcome is _Unlink.DELETED:
                if not dry_run:
                    scan.deleted.append(name)
                result.deleted_files += 1
                result.deleted_bytes += segment.size
                continue
            if outcome is _Unlink.GONE:
                continue
        elif segment.mtime < clock_cutoff and name not in protected:
            result.held_back_files += 1
        kept.append(name)
    result.kept_files = len(kept)
    result.oldest_kept = min(kept, default=None)


def _protected(segments: list[Segment], running: bool, writing: Collection[str]) -> set[str]:
    """What a live ffmpeg may be writing: the file it has open, where known, and, whether known or
    not, the newest by name, or, if the clock was stepped back, the newest by mtime: both, rather
    than guess."""
    protected = set(writing)
    if running and segments:
        protected |= {max(segments)[0], max(segments, key=lambda s: (s[1], s[0]))[0]}
    return protected


def _unlink(dir_fd: int, name: str, result: CameraPrune) -> _Unlink:
    """A file that vanished meanwhile is nobody's error, and not counted as our deletion."""
    try:
        os.unlink(name, dir_fd=dir_fd)
    except FileNotFoundError:
        return _Unlink.GONE
    except OSError as exc:
        result.add_error(f"{name}: {exc.strerror or exc}")
        return _Unlink.FAILED
    return _Unlink.DELETED


def _is_symlink(dir_fd: int, name: str) -> bool:
    try:
        return stat.S_ISLNK(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode)
    except OSError:
        return False
