"""The segment index writer: one process writes every camera's rows (docs/design.md, "Coverage").

A worker used to write its own rows, from a thread of its own, which cost every camera sqlite3, a
connection with its statement and page caches, and a thread: about 0.9 MiB of private memory per
worker. Now a worker only says which segment is complete (a line on its report pipe, see
``worker/report.py``), the master forwards that as a job to its index writer child
(``master/index_child.py``), and this module is that child's work: read jobs, probe each finished
segment (:func:`mp4.probe`, a few small reads), write its row (:class:`SegmentIndex`).

The master never waits on the index: the index lives on the mirror volume, where SQLite's
``fcntl`` lock can wait in the kernel without bound (an NFS mirror whose lock daemon is gone).
Only this process waits then; the master's non-blocking pipe to it fills and further jobs are
dropped (the master logs that once), and ``coverage`` reads those segments from their files.

Jobs come a pipe read at a time (a batch, at most :data:`READ_BYTES`): first every segment the
batch names is probed and written, one connection per mirror dir and one transaction per camera;
then the segments each job's ffmpeg opened after it that its worker never saw open (looked up by
name, :meth:`IndexWriter._unseen`). So at
a stop, when every camera's last job arrives at once and the master gives this process only a
moment, each camera's last known segment goes first. No connection is held between batches:
nothing stays open on the mirror volume, and a reader in the workers' group, who cannot create
SQLite's ``-shm``, reads the main file alone (:mod:`index`).

Single-threaded on purpose: root takes the index directory owner's identity for each SQLite call
(:mod:`owner`), which it refuses to do while another thread runs. A write that fails is logged
once per camera; recording never depends on the index.
"""

from __future__ import annotations

import json
import math
import os
import stat
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..cameras.camera import is_safe_id
from ..plumbing import logs
from . import mp4
from .index import Row, SegmentIndex, row_from, start_of
from .segments import parse_name, segment_names

READ_BYTES = 65536  # one batch: what one read of the pipe returns
MAX_LINE = 8192  # a job is far shorter; a longer rest of a line is garbage, dropped
LOOK_UP_LIMIT = 120  # after an ffmpeg ended: names looked up one by one; a longer stretch lists the directory
_KEY = "%Y%m%d_%H%M%S"


@dataclass(frozen=True)
class Job:
    """One complete segment (``name``), and, when ``until`` is set, the segments its ffmpeg opened
    after it up to that wall-clock second that the worker may not have seen (its own check comes
    once a second): the segment now open began after ``until`` (a segment done), or ffmpeg ended
    then. Without a name the stretch starts at ``since``, ffmpeg's start."""

    mirror: Path
    camera: str
    name: str | None
    since: float | None = None
    until: float | None = None

    @property
    def directory(self) -> Path:
        return self.mirror / self.camera


def encode_job(mirror: Path, camera: str, name: str | None, since: float | None = None, until: float | None = None) -> bytes:
    """The master's line to the writer for one job."""
    job: dict[str, Any] = {"mirror": str(mirror), "camera": camera, "name": name}
    job.update({key: value for key, value in (("since", since), ("until", until)) if value is not None})
    return json.dumps(job, separators=(",", ":"), ensure_ascii=True).encode("ascii") + b"\n"


def decode_jobs(buffer: bytes) -> tuple[list[Job], bytes]:
    """The complete lines of ``buffer`` as jobs (malformed or unsafe ones dropped), and the rest."""
    *lines, rest = buffer.split(b"\n")
    jobs = [job for line in lines if (job := _job(line)) is not None]
    return jobs, rest if len(rest) <= MAX_LINE else b""


def _job(line: bytes) -> Job | None:
    """A job only when every part is what the master sends: an absolute mirror dir, a safe camera
    id (one plain path component), a segment name or none, finite times."""
    try:
        raw = json.loads(line)
    except ValueError:
        return None
    if not isinstance(raw, dict):
        return None
    mirror, camera, name = raw.get("mirror"), raw.get("camera"), raw.get("name")
    since, until = raw.get("since"), raw.get("until")
    if not (isinstance(mirror, str) and os.path.isabs(mirror) and isinstance(camera, str) and is_safe_id(camera)):
        return None
    if name is not None and not (isinstance(name, str) and start_of(name) is not None):
        return None
    if any(t is not None and (not isinstance(t, int | float) or not math.isfinite(t)) for t in (since, until)):
        return None
    return Job(Path(mirror), camera, name, since, until)


class IndexWriter:
    """Jobs in, rows out; never raises. ``probe`` and ``open_index`` are seams for tests."""

    def __init__(self, probe: Callable[[Path], mp4.SegmentInfo] = mp4.probe,
                 open_index: Callable[[Path], SegmentIndex] = lambda mirror: SegmentIndex(mirror, make_dir=True)) -> None:
        self._probe = probe
        self._open_index = open_index
        # camera -> the last name probed and its row (a name is not probed twice in a row; its
        # duration bounds where the next segment can begin)
        self.last: dict[str, tuple[str, Row | None]] = {}
        self.failing: set[str] = set()  # cameras whose last write failed (logged once)

    def handle(self, jobs: list[Job]) -> None:
        """One batch: the named segments first, then the ones their ffmpegs opened unseen."""
        probed = self._index([(job, job.name) for job in jobs if job.name is not None])
        self._index([(job, name) for job in jobs for name in self._unseen(job, probed)])

    def _index(self, items: Iterable[tuple[Job, str]]) -> dict[tuple[str, str], Row | None]:
        """Probe and write; the rows by (camera, name), None for a segment that is gone."""
        found: dict[Path, dict[str, list[Row]]] = {}
        probed: dict[tuple[str, str], Row | None] = {}
        for job, name in items:
            last, row = self.last.get(job.camera, ("", None))
            if last != name:
                row = self._row(job.directory / name)
                self.last[job.camera] = (name, row)
                if row is not None:
                    found.setdefault(job.mirror, {}).setdefault(job.camera, []).append(row)
            probed[(job.camera, name)] = row
        for mirror, rows in found.items():
            self._write(mirror, rows)
        return probed

    def _row(self, path: Path) -> Row | None:
        info = self._probe(path)
        if (info.problem or "").startswith("unreadable: No such file"):
            return None  # moved aside or pruned meanwhile
        return row_from(path.name, info)

    def _write(self, mirror: Path, rows: dict[str, list[Row]]) -> None:
        """One connection for the batch's rows of one mirror dir, one transaction per camera."""
        written: set[str] = set()
        try:
            with self._open_index(mirror) as index:
                for camera, some in rows.items():
                    try:
                        index.put(camera, some)
                        written.add(camera)
                    except Exception as exc:  # noqa: BLE001 - whatever it is, recording goes on
                        self._failed(camera, some[0].name, exc)
        except Exception as exc:  # noqa: BLE001 - the index could not be opened (or closed)
            for camera, some in rows.items():
                if camera not in written:
                    self._failed(camera, some[0].name, exc)
        for camera in written & self.failing:
            self.failing.discard(camera)
            logs.for_camera(camera).info("segment index written again")

    def _failed(self, camera: str, name: str, exc: BaseException) -> None:
        if camera not in self.failing:
            logs.for_camera(camera).warning("cannot index segment %s: %s; recording goes on (logged once)", name, exc)
        self.failing.add(camera)

    def _unseen(self, job: Job, probed: dict[tuple[str, str], Row | None]) -> list[str]:
        """Segments that began after the job's segment (or ffmpeg's start) and no later than
        ``until``: the worker looks once a second, so a segment shorter than that (the first of a
        run often is), or one opened just before ffmpeg ended, is never seen open. A name is the
        second its segment began, so they are looked up one by one, from where the job's segment
        ended (its playable seconds, less 2 s for names that drop fractions) or the second after
        its start, but not before this ffmpeg's start (the segment may be an earlier run's, whose
        own end covered what followed it); a stretch longer than :data:`LOOK_UP_LIMIT` (an
        unplayable segment of an hour, an ffmpeg that showed no segment for minutes) lists the
        directory instead."""
        known = start_of(job.name) if job.name is not None else None
        if job.until is None or (known is None and job.since is None):
            return []
        high = math.floor(job.until)
        if known is None:
            assert job.since is not None
            low = math.floor(job.since - 2)
        else:
            low = math.floor(known) + 1
            row = probed.get((job.camera, job.name or ""))
            if row is not None and 0 < row.duration <= high + 2 - known:
                low = max(low, math.floor(known + row.duration) - 2)  # the next began about when it ended
            if job.since is not None:
                low = max(low, math.floor(job.since - 2))
        try:
            if high - low >= LOOK_UP_LIMIT:
                return sorted(n for n in segment_names(job.directory) if low <= (parse_name(n) or 0) <= high)
            names = (time.strftime(_KEY, time.gmtime(second)) + ".mp4" for second in range(low, high + 1))
            return [name for name in names if _is_file(job.directory / name)]
        except (OSError, OverflowError, ValueError):
            return []


def _is_file(path: Path) -> bool:
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return False


def serve(fd: int, writer: IndexWriter, read: Callable[[int, int], bytes] = os.read) -> int:
    """The writer child's loop: read jobs until the master closes the pipe (end of file), then
    return 0. A read waits for jobs; whatever one read returns is one batch."""
    rest, seen = b"", set[tuple[str, str, int]]()
    while chunk := read(fd, READ_BYTES):
        jobs, rest = decode_jobs(rest + chunk)
        try:
            writer.handle(jobs)
        except Exception as exc:  # noqa: BLE001 - a bug here must not end the writer: the next batch may work
            logs.once_per_place(logs.master(), exc, seen, "segment index writer: unexpected error, carrying on")
    return 0
