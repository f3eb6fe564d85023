"""Mirror retention: delete segments older than their camera's ``retention_hours``.

The NVR does not index the mirror directory, so nothing else ever deletes from it: without this
the mirror volume fills up and recording stops. The NVR's rule for mirror copies is followed
exactly: a segment is deleted when its modification time is older than ``retention_hours``.

Deleting is the one irreversible thing this project does, so every rule errs towards keeping:

- only regular files whose names match the segment pattern, directly inside the directory of a
  camera that is in the database; symlinks are never followed (the camera directory itself is
  opened with ``O_NOFOLLOW`` and every unlink is relative to that descriptor, so swapping a
  directory for a symlink mid-pass cannot redirect a deletion), nothing is descended into;
- a camera whose retention cannot be read keeps everything, and so does every directory whose
  camera has left the database (its retention is unknowable); both are reported instead;
- the segment a running ffmpeg is writing is never deleted, even when its mtime says it expired
  (a stalled source stops updating it);
- a database that cannot be read means "no news": the pass is skipped.

:func:`prune_pass` only does file I/O so that it can be tested on a temp tree and timed;
:func:`run_pass` adds the database and the process table; :func:`log_report` is the logging,
kept apart so the caller decides how often a pass is worth a log line.
"""

from __future__ import annotations

import enum
import errno
import logging
import math
import os
import re
import stat
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from . import logs
from .camera import Camera, is_safe_id
from .database import DatabaseError, read_cameras
from .ffmpeg import SEGMENT_PATTERN
from .segments import SEGMENT_NAME

SECONDS_PER_HOUR = 3600.0
# One broken disk can fail every unlink of a pass; a handful of messages says it, thousands don't.
MAX_ERRORS_KEPT = 5


class _Unlink(enum.Enum):
    DELETED = "deleted"
    GONE = "gone"  # vanished between listing and unlink: fine, and not our deletion
    FAILED = "failed"


_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
# A plain decimal number: float() alone would also take "nan", "1_000" and non-ASCII digits,
# none of which the NVR would read as a number of hours.
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?", re.ASCII)


@dataclass
class CameraPrune:
    """What one pass did (or would do) for one camera of the database."""

    camera_id: str
    retention_hours: float | None = None
    has_dir: bool = False
    deleted_files: int = 0
    deleted_bytes: int = 0
    kept_files: int = 0
    oldest_kept: str | None = None
    skipped: str | None = None
    failed_files: int = 0
    errors: list[str] = field(default_factory=list)

    def add_error(self, message: str) -> None:
        self.failed_files += 1
        if len(self.errors) < MAX_ERRORS_KEPT:
            self.errors.append(message)


@dataclass
class OrphanDir:
    """A directory in the mirror whose camera is not in the database: reported, never pruned."""

    name: str
    files: int = 0
    bytes: int = 0
    error: str | None = None


@dataclass
class PassReport:
    """One pass over the mirror; ``error`` set means the pass was skipped and nothing deleted."""

    mirror_dir: Path
    now: float
    dry_run: bool = False
    cameras: list[CameraPrune] = field(default_factory=list)
    orphans: list[OrphanDir] = field(default_factory=list)
    running: frozenset[str] = frozenset()
    error: str | None = None

    @property
    def deleted_files(self) -> int:
        return sum(c.deleted_files for c in self.cameras)

    @property
    def deleted_bytes(self) -> int:
        return sum(c.deleted_bytes for c in self.cameras)

    def format_lines(self) -> list[str]:
        """Human output for ``prune`` and ``check``: one line per camera and per orphan."""
        if self.error is not None:
            return [f"prune pass skipped, nothing deleted: {self.error}"]
        verb = "would delete" if self.dry_run else "deleted"
        lines = []
        for cam in self.cameras:
            # An unsafe id is shown quoted and cut: it may hold anything, newlines included.
            shown = cam.camera_id if is_safe_id(cam.camera_id) else repr(cam.camera_id[:40])
            if cam.skipped is not None:
                text = f"{shown}: nothing deleted: {cam.skipped}"
            elif not cam.has_dir:
                text = f"{shown}: no mirror directory"
            else:
                text = (
                    f"{shown}: {verb} {cam.deleted_files} files {format_bytes(cam.deleted_bytes)}, "
                    f"oldest kept {cam.oldest_kept or '-'}"
                )
                if cam.camera_id in self.running:
                    text += " (recording)"
            if cam.failed_files:
                text += f"; {cam.failed_files} errors, first: {cam.errors[0]}"
            lines.append(text)
        for orphan in self.orphans:
            lines.append(f"{orphan.name}: {_orphan_text(orphan)}")
        lines.append(
            f"total: {verb} {self.deleted_files} files {format_bytes(self.deleted_bytes)}"
            + (f", {len(self.orphans)} orphaned directories left alone" if self.orphans else "")
        )
        return lines


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


def running_cameras(mirror_dir: Path) -> set[str]:
    """Ids of cameras with a live ffmpeg writing into ``<mirror_dir>/<id>/``.

    Asked of the process table, not of the master's bookkeeping, so that the hand-run CLI and the
    master's own pass agree, and an ffmpeg left behind by a crashed worker still counts. A process
    counts when its argv[0] is named ffmpeg, or, because the binary is configurable and may have
    any name, when an argument is our output pattern. Any argument of such a process that lies
    directly in a camera directory marks that camera: seeing too much only keeps one extra file,
    seeing too little could delete the file being written.
    """
    mirror = Path(mirror_dir).resolve()
    found: set[str] = set()
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = proc.info.get("cmdline")
        if not cmdline:
            continue
        if "ffmpeg" in os.path.basename(cmdline[0]):
            candidates = cmdline[1:]
        else:
            candidates = [arg for arg in cmdline[1:] if os.path.basename(arg) == SEGMENT_PATTERN]
        cwd: str | None = None
        for arg in candidates:
            if not arg or arg.startswith("-"):
                continue
            path = Path(arg)
            if not path.is_absolute():
                if cwd is None:
                    try:
                        cwd = proc.cwd()
                    except (psutil.Error, OSError):
                        cwd = ""
                if not cwd:
                    # Cannot place a relative path: assume the worst for the camera it names.
                    if path.parent.name and is_safe_id(path.parent.name):
                        found.add(path.parent.name)
                    continue
                path = Path(cwd) / path
            camera_dir = path.parent
            # The camera directory itself is not resolved: a symlinked camera directory is never
            # pruned anyway, and resolving it would name the link's target instead.
            try:
                if camera_dir.name and camera_dir.parent.resolve() == mirror:
                    found.add(camera_dir.name)
            except (OSError, RuntimeError):
                continue
    return found


def prune_pass(
    mirror_dir: Path, cameras: list[Camera], running: set[str], now: float, dry_run: bool = False
) -> PassReport:
    """Apply retention to the mirror for ``cameras`` (every database row, mirrored or not).

    Retention belongs to the camera, not to whether it is mirrored right now: a camera whose
    mirroring was switched off still has files in the mirror that must age out.
    """
    mirror_dir = Path(mirror_dir)
    report = PassReport(mirror_dir=mirror_dir, now=now, dry_run=dry_run, running=frozenset(running))
    try:
        mirror_fd = os.open(mirror_dir, _DIR_FLAGS)
    except OSError as exc:
        report.error = f"cannot open mirror directory {str(mirror_dir)!r}: {exc.strerror or exc}"
        return report
    try:
        known = {camera.id for camera in cameras}
        # Listing first: a mirror that cannot be read is found out before anything is deleted.
        try:
            report.orphans = _orphans(mirror_fd, known)
        except OSError as exc:
            report.error = f"cannot list mirror directory {str(mirror_dir)!r}: {exc.strerror or exc}"
            return report
        done: set[str] = set()
        for camera in cameras:
            if camera.id in done:
                continue  # id is the primary key; a second row would be a broken database
            done.add(camera.id)
            report.cameras.append(_prune_camera(mirror_fd, camera, camera.id in running, now, dry_run))
    finally:
        os.close(mirror_fd)
    return report


def run_pass(db: Path, mirror_dir: Path, now: float | None = None, dry_run: bool = False) -> PassReport:
    """One complete pass: database, running ffmpegs, then the files. Never raises for bad data."""
    if now is None:
        now = time.time()
    try:
        cameras = read_cameras(db)
    except DatabaseError as exc:
        return PassReport(mirror_dir=Path(mirror_dir), now=now, dry_run=dry_run, error=str(exc))
    return prune_pass(mirror_dir, cameras, running_cameras(mirror_dir), now, dry_run=dry_run)


def log_report(report: PassReport, log: logging.Logger | logging.LoggerAdapter | None = None) -> None:
    """Log one line per camera that lost files and one per problem; silence when all is well.

    ``log`` carries the lines that concern no single camera (skipped pass, orphans). Cameras
    without a directory are not worth a line: they have nothing that could fill the volume.
    """
    log = log if log is not None else logs.master()
    if report.error is not None:
        log.warning("prune pass skipped, nothing deleted: %s", report.error)
        return
    verb = "would prune" if report.dry_run else "pruned"
    for cam in report.cameras:
        camera_log = logs.for_camera(cam.camera_id)
        if cam.deleted_files:
            camera_log.info(
                "%s %d files %s oldest_kept=%s",
                verb, cam.deleted_files, format_bytes(cam.deleted_bytes), cam.oldest_kept or "-",
            )
        if cam.skipped is not None and cam.has_dir:
            camera_log.warning("prune skipped, nothing deleted: %s", cam.skipped)
        if cam.failed_files:
            camera_log.warning("prune: %d files could not be deleted, first: %s", cam.failed_files, cam.errors[0])
    for orphan in report.orphans:
        log.warning("mirror directory %r: %s", orphan.name, _orphan_text(orphan))


def format_bytes(size: int) -> str:
    value = float(size)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            return f"{size} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    raise AssertionError("unreachable")


def _orphan_text(orphan: OrphanDir) -> str:
    if orphan.error is not None:
        return f"orphaned (camera not in the database), left alone; size unknown: {orphan.error}"
    return (
        f"orphaned (camera not in the database), left alone: "
        f"{orphan.files} files {format_bytes(orphan.bytes)}"
    )


def _prune_camera(mirror_fd: int, camera: Camera, running: bool, now: float, dry_run: bool) -> CameraPrune:
    result = CameraPrune(camera.id)
    if not is_safe_id(camera.id):
        result.skipped = "unsafe id: not a single plain directory name"
        return result
    result.retention_hours, reason = parse_retention(camera.retention_hours)
    try:
        dir_fd = os.open(camera.id, _DIR_FLAGS | os.O_NOFOLLOW, dir_fd=mirror_fd)
    except FileNotFoundError:
        result.skipped = reason
        return result
    except OSError as exc:
        result.has_dir = True
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            # Linux answers ENOTDIR, not ELOOP, for a symlink opened with O_DIRECTORY|O_NOFOLLOW.
            if _is_symlink(mirror_fd, camera.id):
                result.skipped = "camera directory is a symlink; symlinks are never followed"
            else:
                result.skipped = "camera path is not a directory"
        else:
            result.skipped = f"cannot open camera directory: {exc.strerror or exc}"
        return result
    result.has_dir = True
    try:
        if result.retention_hours is None:
            result.skipped = reason
            return result
        cutoff = now - result.retention_hours * SECONDS_PER_HOUR
        try:
            _prune_dir(dir_fd, result, cutoff, running, dry_run)
        except OSError as exc:
            result.add_error(f"cannot list camera directory: {exc.strerror or exc}")
    finally:
        os.close(dir_fd)
    return result


def _prune_dir(dir_fd: int, result: CameraPrune, cutoff: float, running: bool, dry_run: bool) -> None:
    """Decide every segment first, delete after: the newest must be known before anything goes."""
    segments: list[tuple[str, float, int]] = []
    is_segment = SEGMENT_NAME.fullmatch  # hot loop: 1,440 files a day per camera
    with os.scandir(dir_fd) as entries:
        for entry in entries:
            name = entry.name
            if not is_segment(name) or not name.isascii():
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
            segments.append((name, info.st_mtime, info.st_size))
    protected: set[str] = set()
    if running and segments:
        # The file ffmpeg writes is the newest by name, unless the clock was stepped back, in
        # which case it is the newest by mtime: keep both rather than guess.
        protected = {max(segments)[0], max(segments, key=lambda s: (s[1], s[0]))[0]}
    kept: list[str] = []
    for name, mtime, size in segments:
        if mtime < cutoff and name not in protected:
            outcome = _Unlink.DELETED if dry_run else _unlink(dir_fd, name, result)
            if outcome is _Unlink.DELETED:
                result.deleted_files += 1
                result.deleted_bytes += size
                continue
            if outcome is _Unlink.GONE:
                continue
        kept.append(name)
    result.kept_files = len(kept)
    result.oldest_kept = min(kept, default=None)


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


def _orphans(mirror_fd: int, known: Iterable[str]) -> list[OrphanDir]:
    """Directories that could be a camera's (safe names) but whose camera is not in the database.

    Names that no camera id could have (``lost+found`` at a volume root, hidden directories) are
    not camera directories and not reported.
    """
    known = set(known)
    orphans = []
    with os.scandir(mirror_fd) as entries:
        for entry in entries:
            if entry.name in known or not is_safe_id(entry.name):
                continue
            try:
                if not entry.is_dir(follow_symlinks=False):
                    continue
            except OSError:
                continue
            orphans.append(_measure(mirror_fd, entry.name))
    orphans.sort(key=lambda o: o.name)
    return orphans


def _measure(mirror_fd: int, name: str) -> OrphanDir:
    orphan = OrphanDir(name)
    try:
        dir_fd = os.open(name, _DIR_FLAGS | os.O_NOFOLLOW, dir_fd=mirror_fd)
    except OSError as exc:
        orphan.error = exc.strerror or str(exc)
        return orphan
    try:
        with os.scandir(dir_fd) as entries:
            for entry in entries:
                try:
                    if entry.is_file(follow_symlinks=False):
                        orphan.bytes += entry.stat(follow_symlinks=False).st_size
                        orphan.files += 1
                except OSError:
                    continue
    except OSError as exc:
        orphan.error = exc.strerror or str(exc)
    finally:
        os.close(dir_fd)
    return orphan
