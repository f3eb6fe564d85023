"""Mirror retention: delete segments older than their camera's ``retention_hours``.

The NVR does not index the mirror directory, so nothing else ever deletes from it: without this
the mirror volume fills up and recording stops. The NVR's rule for mirror copies is followed: a
segment is deleted when its modification time is older than ``retention_hours``.

Deleting is the one irreversible thing this project does, so every rule errs towards keeping:

- only regular files whose names match :data:`SEGMENT_FILE`, directly inside the directory of a
  camera that is in the camera list; symlinks are never followed (the camera directory itself is
  opened with ``O_NOFOLLOW`` and every unlink is relative to that descriptor, so swapping a
  directory for a symlink mid-pass cannot redirect a deletion), nothing is descended into;
- a camera whose retention cannot be read keeps everything, and so does every directory whose
  camera has left the list (its retention is unknowable); both are reported instead. So does a
  camera whose id is in the list twice or differs only in letter case from another one's (on a
  case-insensitive volume they would share one directory and the shorter retention would win);
- the segment a running ffmpeg is writing is never deleted, even when its mtime says it expired
  (a stalled source stops updating it);
- a database that cannot be read means "no news": the pass is skipped.

Whose view of the database. The master's pass does not read the database: it is handed the
master's last good camera list (:func:`child_main`), so a table that is being rebuilt by an NVR
migration (CREATE new, copy, DROP old, RENAME), which the master already treats as damage, can
never make the pruner fall back to a default retention. A master that never had a good read hands
``None`` and the pass is skipped. A list read from a table without a ``retention_hours`` column
prunes nothing at all: the column's default (24 h) is not the NVR's answer but its absence.

The hand-run ``prune`` command (:func:`run_pass`) has to read the database itself. It refuses when
the table lacks ``retention_hours``, and, when a master runs and its status file lists the columns
of its last good read, when the table lacks any of those (a migration is probably under way; the
master would not trust that read either). With no master to compare with it proceeds, and says
which other columns are missing and were defaulted: none of them changes a retention.

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
  time. A file is therefore deleted only when it is also past the *footage cutoff*: some camera in
  the list has recorded at least ``retention_hours`` of segments after the file's mtime. After a
  jump, old files go exactly when the footage recorded since says they really expired; without
  any recording nothing more is deleted (the price: a mirror where nothing records keeps its last
  retention's worth of footage until something does). Gaps in recording only make the cutoff
  earlier, i.e. keep more; files held back by more than a day are reported as a suspected jump.

:func:`prune_pass` only does file I/O so that it can be tested on a temp tree and timed;
:func:`run_pass_for` adds the process table and the list checks; :func:`run_pass` the database;
:func:`log_report` is the logging, kept apart so the caller decides how often a pass is worth a
log line.
"""

from __future__ import annotations

import datetime
import enum
import errno
import logging
import math
import os
import re
import signal
import stat
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import psutil

from . import logs
from .camera import COLUMNS, MIN_SEGMENT_SECONDS, Camera, is_safe_id
from .database import DatabaseError, read_table
from .ffmpeg import SEGMENT_PATTERN
from .segments import SEGMENT_OR_MOVED

SECONDS_PER_HOUR = 3600.0
# One broken disk can fail every unlink of a pass; a handful of messages says it, thousands don't.
MAX_ERRORS_KEPT = 5
# The one filter for what counts as a segment file: ffmpeg's names and the ``~N`` names the
# worker moves footage aside to after a clock step (footage too, so it ages out like the rest).
# Its first two groups must capture the UTC date (YYYYmmdd) and time (HHMMSS) the name encodes.
SEGMENT_FILE: re.Pattern[str] = SEGMENT_OR_MOVED
# No segment of this project is older: a clock or an mtime before it was never set.
PLAUSIBLE_SINCE = datetime.datetime(2020, 1, 1, tzinfo=datetime.timezone.utc).timestamp()
# How far two stamps may disagree before one of them is taken to be wrong: a day is far beyond any
# segment's length or any NTP correction, and far below any retention worth configuring.
CLOCK_TOLERANCE = 86400.0
RETENTION_COLUMN = "retention_hours"


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
    # Kept although past retention: mtime not believable (see the module docstring) ...
    implausible_files: int = 0
    # ... or past the clock's cutoff but not the footage cutoff (too little recorded since).
    held_back_files: int = 0
    jump_suspected: bool = False  # the footage cutoff is over a day behind the clock's

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
    notes: list[str] = field(default_factory=list)  # about the input, e.g. columns defaulted

    @property
    def deleted_files(self) -> int:
        return sum(c.deleted_files for c in self.cameras)

    @property
    def deleted_bytes(self) -> int:
        return sum(c.deleted_bytes for c in self.cameras)

    def format_lines(self) -> list[str]:
        """Human output for ``prune`` and ``check``: one line per camera and per orphan."""
        lines = [f"note: {note}" for note in self.notes]
        if self.error is not None:
            return lines + [f"prune pass skipped, nothing deleted: {self.error}"]
        verb = "would delete" if self.dry_run else "deleted"
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
                text += "".join(f"; {part}" for part in _kept_texts(cam))
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


class _Segment(NamedTuple):
    name: str
    mtime: float
    size: int
    start: float  # the UTC second its name encodes: when ffmpeg opened it


@dataclass
class _Scan:
    """One camera after the first phase: what is there, nothing deleted yet."""

    camera: Camera
    result: CameraPrune
    dir_identity: tuple[int, int] | None = None  # (st_dev, st_ino) of the directory listed
    segments: list[_Segment] = field(default_factory=list)


def prune_pass(
    mirror_dir: Path,
    cameras: list[Camera],
    running: set[str],
    now: float,
    dry_run: bool = False,
    segment_file: re.Pattern[str] = SEGMENT_FILE,
) -> PassReport:
    """Apply retention to the mirror for ``cameras`` (every camera row, mirrored or not).

    Retention belongs to the camera, not to whether it is mirrored right now: a camera whose
    mirroring was switched off still has files in the mirror that must age out. Two phases: every
    camera directory is listed before anything is deleted, because the clock checks and the
    footage cutoff need the whole mirror.
    """
    mirror_dir = Path(mirror_dir)
    report = PassReport(mirror_dir=mirror_dir, now=now, dry_run=dry_run, running=frozenset(running))
    if not now >= PLAUSIBLE_SINCE:
        report.error = f"the system clock reads {_utc(now)}, before {_utc(PLAUSIBLE_SINCE)}: it is not set"
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
            report.orphans = _orphans(mirror_fd, {camera.id for camera in cameras})
        except OSError as exc:
            report.error = f"cannot list mirror directory {str(mirror_dir)!r}: {exc.strerror or exc}"
            return report
        scans = _scan_cameras(mirror_fd, cameras, listed, segment_file)
        report.cameras = [scan.result for scan in scans]
        report.error = _clock_went_back(scans, now)
        if report.error is not None:
            return report
        footage = _FootageCutoff(scans, now)
        for scan in scans:
            if scan.result.skipped is None and scan.dir_identity is not None:
                _prune_camera(mirror_fd, scan, scan.camera.id in running, now, footage, dry_run)
    finally:
        os.close(mirror_fd)
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
    return prune_pass(mirror_dir, cameras, running_cameras(mirror_dir), now, dry_run=dry_run)


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
        cameras, columns = read_table(db)
    except DatabaseError as exc:
        return PassReport(mirror_dir=mirror_dir, now=now, dry_run=dry_run, error=str(exc))
    refusal = _columns_refusal(columns, state_dir)
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
    from . import lifeline, titles

    lifeline.become_helper(titles.PRUNE, inherited_fds, master_pid)
    log_report(run_pass_for(cameras, mirror_dir, columns=columns))
    return 0


def log_report(report: PassReport, log: logging.Logger | logging.LoggerAdapter | None = None) -> None:
    """Log one line per camera that lost files and one per problem; silence when all is well.

    ``log`` carries the lines that concern no single camera (skipped pass, orphans). Cameras
    without a directory are not worth a line: they have nothing that could fill the volume.
    """
    log = log if log is not None else logs.master()
    for note in report.notes:
        log.info("prune: %s", note)
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
        if cam.implausible_files or cam.jump_suspected:
            # Held back by less than a day is ordinary (gaps in recording); more is worth a line.
            texts = [text for text in _kept_texts(cam) if cam.jump_suspected or "implausible" in text]
            camera_log.warning("prune: %s", "; ".join(texts))
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


def _utc(moment: float) -> str:
    try:
        return datetime.datetime.fromtimestamp(moment, datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ")
    except (OverflowError, OSError, ValueError):
        return repr(moment)


def _kept_texts(cam: CameraPrune) -> list[str]:
    """Why files past retention were kept, for the CLI line and the log."""
    texts = []
    if cam.held_back_files:
        texts.append(
            f"{cam.held_back_files} files past retention kept: less than {cam.retention_hours:g} h of "
            "footage recorded after them" + (" (clock stepped forward?)" if cam.jump_suspected else "")
        )
    if cam.implausible_files:
        texts.append(f"{cam.implausible_files} files kept: implausible mtime (unset clock, future, or before their name)")
    return texts


def _columns_refusal(columns: frozenset[str], state_dir: Path | None) -> str | None:
    """Why a table read by hand must not be pruned by, or None."""
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
    from .daemon import running_master
    from .status import read_status

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


def _ambiguous_ids(cameras: list[Camera]) -> dict[str, str]:
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


def _scan_cameras(
    mirror_fd: int, cameras: list[Camera], listed: set[str], segment_file: re.Pattern[str]
) -> list[_Scan]:
    """Phase one: every camera's retention and segment files, once per id, nothing deleted."""
    ambiguous = _ambiguous_ids(cameras)
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


def _list_segments(dir_fd: int, result: CameraPrune, segment_file: re.Pattern[str]) -> list[_Segment]:
    """Regular files named like segments with a real date in the name; nothing else is ours."""
    segments = []
    match = segment_file.fullmatch  # hot loop: 1,440 files a day per camera
    with os.scandir(dir_fd) as entries:
        for entry in entries:
            name = entry.name
            found = match(name)
            if found is None or not name.isascii():
                continue
            start = _name_time(found.group(1), found.group(2))
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
            segments.append(_Segment(name, info.st_mtime, info.st_size, start))
    return segments


def _name_time(date: str, clock: str) -> float | None:
    """The UTC second a YYYYmmdd, HHMMSS pair names, or None when it names no real moment."""
    try:
        moment = datetime.datetime(int(date[:4]), int(date[4:6]), int(date[6:8]), int(clock[:2]),
                                   int(clock[2:4]), int(clock[4:6]), tzinfo=datetime.timezone.utc)
    except ValueError:
        return None
    return moment.timestamp()


def _corroborated(segment: _Segment) -> bool:
    """Name and mtime agree: two stamps from the clock of the moment the segment was written."""
    return segment.mtime >= PLAUSIBLE_SINCE and abs(segment.mtime - segment.start) <= CLOCK_TOLERANCE


def _plausible(segment: _Segment, now: float) -> bool:
    """An mtime that retention may be computed from (see the module docstring)."""
    return PLAUSIBLE_SINCE <= segment.mtime <= now + CLOCK_TOLERANCE and segment.mtime >= segment.start - CLOCK_TOLERANCE


def _clock_went_back(scans: list[_Scan], now: float) -> str | None:
    """Why the clock cannot be believed, judged by the newest segment it stamped itself."""
    newest: tuple[float, str] | None = None
    for scan in scans:
        for segment in scan.segments:
            if _corroborated(segment) and (newest is None or segment.mtime > newest[0]):
                newest = (segment.mtime, f"{scan.camera.id}/{segment.name}")
    if newest is None or newest[0] <= now + CLOCK_TOLERANCE:
        return None
    return (f"the system clock reads {_utc(now)}, {(newest[0] - now) / 86400:.1f} days before the mtime of "
            f"segment {newest[1]}: the clock went backwards (move that segment aside if it is wrong)")


class _FootageCutoff:
    """For a retention R: the latest mtime before which some camera recorded R of footage.

    Per camera, the mtimes of its believable segments, newest first; ``k`` segments of ``s``
    seconds are at least ``k * s`` seconds of real time whatever the clock said. A camera's
    ``segment_seconds`` is its current setting: a longer old one only keeps more files.
    """

    def __init__(self, scans: list[_Scan], now: float) -> None:
        self._histories = []
        for scan in scans:
            mtimes = sorted((s.mtime for s in scan.segments if _plausible(s, now)), reverse=True)
            if mtimes:
                seconds = scan.camera.segment_seconds
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


def _prune_camera(
    mirror_fd: int, scan: _Scan, running: bool, now: float, footage: _FootageCutoff, dry_run: bool
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
        _delete_expired(dir_fd, scan, running, now, min(clock_cutoff, footage_cutoff), clock_cutoff, dry_run)
    finally:
        os.close(dir_fd)


def _delete_expired(
    dir_fd: int, scan: _Scan, running: bool, now: float, cutoff: float, clock_cutoff: float, dry_run: bool
) -> None:
    result, segments = scan.result, scan.segments
    protected: set[str] = set()
    if running and segments:
        # The file ffmpeg writes is the newest by name, unless the clock was stepped back, in
        # which case it is the newest by mtime: keep both rather than guess.
        protected = {max(segments)[0], max(segments, key=lambda s: (s[1], s[0]))[0]}
    kept: list[str] = []
    for segment in segments:
        name = segment.name
        if not _plausible(segment, now):
            result.implausible_files += 1
        elif segment.mtime < cutoff and name not in protected:
            outcome = _Unlink.DELETED if dry_run else _unlink(dir_fd, name, result)
            if outcome is _Unlink.DELETED:
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
