"""The master's side of the segment index writer: one child process writes every camera's rows.

A worker says which of its segments are complete in lines on its report pipe (``worker/report.py``);
the master reads them with the reports, hands each to :meth:`IndexChild.took`, and this forwards
it as a job (``footage/index_writer.py``) to the index writer child over a pipe of its own. The
worker never opens the index (its memory, docs/design.md, "Coverage"); the master never waits on
it (the index lives on the mirror volume, where SQLite's lock can hang in the kernel).

- **The pipe** is made at the first job and kept by the master for the master's life, so jobs
  wait in it while the writer is being forked or replaced. Its write end is non-blocking: a full
  pipe (a writer stuck on a hung index, or far behind) drops the job, logged once, and
  ``coverage`` reads that segment from its file; once half the pipe is free again, that is logged
  with the number dropped. 1 MiB when the kernel allows it (about 9,000 jobs), else 64 KiB.
- **The child** is forked at the first job, runs as ``--user`` when one is set (as the workers
  did: it parses segments and writes the index, never as root), dies with the master (SIGKILL by
  the kernel), is reaped by it and replaced after the workers' respawn back-off when it dies.
- **At a stop** the workers stop first: their last lines (ffmpeg ended, the last segment) are read
  before their exits are taken, and forwarded. Once no worker is left the master closes its end
  of the pipe, so the writer reads what is left and exits at its end, and gives it
  :data:`CLOSE_SECONDS`: a writer still there then (a hung index) is SIGKILLed.
"""

from __future__ import annotations

import fcntl
import math
import os
import signal
import struct
import termios
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from ..footage import index_writer
from ..footage.segments import parse_name
from ..plumbing import lifeline, logs, titles
from ..plumbing.helper_child import HelperChild, exit_text
from ..worker import backoff, ffmpeg, privileges
from ..worker.report import EVENT, FFMPEG_ENDED, SEGMENT_DONE, is_event

CLOSE_SECONDS = 0.5  # at a stop, after the last worker: what is not written by then is left to coverage
PIPE_BYTES = 1 << 20  # asked for; the kernel may keep its default (64 KiB)


class IndexChild:
    def __init__(self, system: Any, run_as: str | None) -> None:
        """``system``: the master's clocks, fork and kill (:class:`.system.System`); ``run_as``:
        ``--user``, which cannot change on reload."""
        self.system, self.run_as = system, run_as
        self.log = logs.master()
        self.child = HelperChild("segment index writer", backoff.worker_respawn_delay, backoff.SPAWN_FAILED_DELAY,
                                 self.log)
        self._read_fd: int | None = None
        self._write_fd: int | None = None
        self.dropped = 0  # jobs dropped since the pipe last had room
        self.stopping = False
        self.kill_at: float | None = None  # at a stop: the writer's end, then SIGKILL

    @property
    def fds(self) -> tuple[int, ...]:
        """The pipe's ends, which every other child of the master closes."""
        return tuple(fd for fd in (self._read_fd, self._write_fd) if fd is not None)

    def pids(self) -> set[int]:
        return self.child.pids()

    # -- jobs ----------------------------------------------------------------------------------

    def took(self, report: Mapping[str, Any], slot: Any) -> bool:
        """True when ``report`` was a segment event (forwarded, or ignored when stale): the master
        then does not take it as the worker's report. An event is matched to the slot's current
        worker by generation (an older generation's never counts), and the directory is the one
        that worker records into, taken from its argv, not from the line."""
        if not is_event(report):
            return False
        worker = getattr(slot, "worker", None)
        if worker is None or report.get("generation") != worker.generation:
            return True
        line = _job_line(ffmpeg.output_dir(worker.key), report)
        if line:
            self._send(line)
        return True

    def _send(self, line: bytes) -> None:
        if self.kill_at is not None:
            return  # the pipe is closed: the writer has what it gets
        if self._write_fd is None:
            self._open()
        assert self._write_fd is not None
        if self.dropped and not self._room():
            self.dropped += 1
            return
        try:
            os.write(self._write_fd, line)
        except BlockingIOError:
            if not self.dropped:
                self.log.warning("segment index writer is stuck or behind (its pipe is full); dropping segment events "
                                 "until it takes them again (coverage reads those segments from their files)")
            self.dropped += 1
            return
        if self.dropped:
            self.log.info("segment index writer takes segment events again; %d were dropped (coverage reads those "
                          "segments from their files)", self.dropped)
            self.dropped = 0

    def _open(self) -> None:
        self._read_fd, self._write_fd = os.pipe2(os.O_CLOEXEC)
        os.set_blocking(self._write_fd, False)  # the master's end only: the writer's read waits
        try:
            fcntl.fcntl(self._write_fd, fcntl.F_SETPIPE_SZ, PIPE_BYTES)
        except OSError:
            pass  # over the user's pipe limits: the default size works too, it only drops sooner

    def _room(self) -> bool:
        """At least half the pipe free: a writer that was stuck is moving again."""
        assert self._write_fd is not None
        try:
            size = fcntl.fcntl(self._write_fd, fcntl.F_GETPIPE_SZ)
            used = struct.unpack("i", fcntl.ioctl(self._write_fd, termios.FIONREAD, b"\0\0\0\0"))[0]
        except OSError:
            return True
        return used <= size // 2

    # -- the child -----------------------------------------------------------------------------

    def tick(self, fds: tuple[int, ...], mirror_dir: Path | None) -> None:
        """Every pass: fork the writer when jobs were sent and none runs (after its back-off)."""
        now = self.system.monotonic()
        if self._read_fd is not None and not self.stopping and self.child.due(now):
            self.child.start(now, self.system.fork, self._main(fds, mirror_dir))

    def _main(self, fds: tuple[int, ...], mirror_dir: Path | None) -> Callable[[], int]:
        read_fd, run_as, master_pid = self._read_fd, self.run_as, os.getpid()
        others = tuple(fd for fd in {*fds, *self.fds} if fd != read_fd)  # our write end too: else no end of file
        assert read_fd is not None
        return lambda: writer_main(read_fd, others, master_pid, run_as, mirror_dir)

    def reaped(self, pid: int, code: int) -> bool:
        """True when ``pid`` was the writer: replaced after a back-off, unless the master stops."""
        if pid not in self.child.pids():
            return False
        if self.stopping:
            self.child.pid = None
            if code != 0:
                self.log.info("segment index writer pid=%d ended (%s) at the stop", pid, exit_text(code))
            return True
        return self.child.reaped(pid, code, self.system.monotonic())

    def next_deadline(self) -> float | None:
        """The moment the master must wake up for: the next writer, or at a stop its SIGKILL."""
        if self.stopping:
            return self.kill_at if self.kill_at is not None and self.kill_at < math.inf and self.child.pid is not None else None
        return self.child.next_deadline() if self._read_fd is not None else None

    # -- the stop ------------------------------------------------------------------------------

    def stop(self, workers_left: bool, fds: tuple[int, ...], mirror_dir: Path | None) -> None:
        """Every pass of the master's stop: nothing until the last worker is gone (its last jobs
        are sent by then); then the pipe is closed, so the writer ends once it has written what is
        in it, and it gets :data:`CLOSE_SECONDS` for that; then SIGKILL."""
        now = self.system.monotonic()
        self.stopping = True
        if workers_left or self._write_fd is None and self.kill_at is None:  # (none: nothing was ever sent)
            return
        if self.kill_at is None:
            if self.child.pid is None:  # dead, or never started: the last jobs get their moment too
                self.child.start(now, self.system.fork, self._main(fds, mirror_dir))
            lifeline.close_fds(self.fds)
            self._read_fd = self._write_fd = None
            self.kill_at = now + CLOSE_SECONDS
        elif self.child.pid is not None and now >= self.kill_at:
            self.log.warning("segment index writer pid=%d did not finish within %.1fs of the last worker; killing it "
                             "(coverage reads the segments it did not index from their files)", self.child.pid,
                             CLOSE_SECONDS)
            self.system.kill(self.child.pid, signal.SIGKILL)
            self.kill_at = math.inf  # killed once; reaped, or named as stuck, by the master


def _job_line(directory: Path, event: Mapping[str, Any]) -> bytes:
    """The writer's job for a worker's event, or b"" when the event is not one we know. A segment
    done ends its job's look-ups before the segment now open began; an ffmpeg that ended, at its end."""
    kind, name, since, until = event.get(EVENT), event.get("name"), event.get("since"), event.get("until")
    if name is not None and not isinstance(name, str):
        return b""
    since = float(since) if isinstance(since, int | float) else None
    if kind == SEGMENT_DONE and isinstance(opened := event.get("next"), str) and (begun := parse_name(opened)):
        return index_writer.encode_job(directory.parent, directory.name, name, since, begun - 1)
    if kind == FFMPEG_ENDED and since is not None and isinstance(until, int | float):
        return index_writer.encode_job(directory.parent, directory.name, name, since, float(until))
    return b""


def writer_main(read_fd: int, fds: tuple[int, ...], master_pid: int, run_as: str | None, mirror_dir: Path | None) -> int:
    """The index writer child: a helper of the master (dies with it), ``--user`` when set, then
    jobs until the master closes the pipe. One that cannot become its user writes nothing and
    only drains the pipe, so the master's jobs neither pile up nor go to root."""
    lifeline.become_helper(titles.INDEX_WRITER, fds, master_pid)
    log = logs.master()
    error = privileges.become_index_user(run_as, mirror_dir, master_pid, log)
    if error is not None:
        log.error("segment index writer: %s; not indexing (coverage reads the segments from their files)", error)
        while os.read(read_fd, index_writer.READ_BYTES):
            pass
        return 1
    return index_writer.serve(read_fd, index_writer.IndexWriter())
