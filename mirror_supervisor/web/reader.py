"""The timeline reader: a short-lived child of the listener that reads coverage block by block.

Coverage reads the mirror volume (the segment index and a ``stat`` per file), and that volume
may hang (a hard NFS mount, a FUSE daemon gone): a call on it then never returns. The listener
serves ``/metrics`` and the peers' ``/cluster/health`` from one thread, so it never reads the
volume itself. It forks this child, which reads the blocks it is given (newest first, neighbours
together: :func:`runs`) with :func:`..footage.coverage.compute` and writes one JSON line per
block into an anonymous memory file as it goes; the listener takes the finished lines whenever
it serves a page and waits for the child a bounded time only. A child still running after
:data:`TIME_LIMIT` is killed, and no second one starts until it is reaped: one stuck in the
kernel on a hung volume is the only one.

A fork, not a thread: root uses the index with its owner's rights only while no other thread
runs (:mod:`..plumbing.owner`), and a thread stuck on the volume could never be ended.

The reader writes nothing, not even the segment index: a file the index does not know (the
segment being written, above all) is parsed and its row left for the worker to write, so a page
looked at every few seconds costs the index no transaction.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import signal
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import setproctitle

from ..cameras.camera import is_safe_id
from ..plumbing import lifeline, titles
from .blocks import BLOCK, EDGE

TIME_LIMIT = 300.0  # a week of a hundred cameras from a warm index takes well under this
RUN_BLOCKS = 25  # blocks read by one coverage read at most: the 25 a day's window touches
POLL = 0.01
MAX_ANSWER = 64 << 20  # what is read of a child's answer at most


@dataclass(frozen=True)
class Job:
    mirror_dir: str
    primary: str | None
    blocks: tuple[float, ...]  # block starts to read, newest first
    cameras: tuple[str, ...]
    since: float = 0.0  # the window's start: nothing before it is read


def runs(starts: Sequence[float]) -> list[tuple[float, float]]:
    """Neighbouring blocks joined into windows of at most :data:`RUN_BLOCKS` blocks, newest first.

    One coverage read per window, not per block: a camera with no footage for hours would cost a
    look-up per second of every empty block, while a longer window is listed instead
    (:mod:`..footage.coverage_files`); and not more than a day's window at once, so that a week's
    first read shows its newest day first. A day that does not start on the hour touches 25 blocks:
    reading its oldest hour apart cost a second read of every camera (docs/benchmarks.md, "The
    status page")."""
    out: list[list[float]] = []
    for start in sorted(set(starts), reverse=True):
        if out and out[-1][0] - BLOCK == start and (out[-1][1] - start) / BLOCK <= RUN_BLOCKS:
            out[-1][0] = start
        else:
            out.append([start, start + BLOCK])
    return [(a, b) for a, b in out]


def prepare() -> None:
    """Import the coverage code in the listener, once, before any child is forked: each child has
    it then (importing it cost every child about 30 ms, on the first page and on every reload).
    Not when this module is imported: the master imports it, and would pass it on to its workers."""
    from ..footage import coverage  # noqa: F401


def read_run(job: Job, start: float, end: float) -> list[dict[str, Any]]:
    """The answers of the blocks in ``[start, end)``, newest first, from one coverage read up to
    :data:`EDGE` before now: per camera its covered stretches, invalid segments (name, start),
    the primary's stretches, its first footage and any problem."""
    from ..footage import coverage

    now = time.time()
    until = min(end, now - EDGE)
    starts = [start + i * BLOCK for i in range(round((end - start) / BLOCK))][::-1]
    start = max(start, min(job.since, until))
    if until <= start:
        return [{"start": b, "known_from": max(b, start), "known_until": max(b, until), "read_at": now,
                 "cameras": {cid: {} for cid in job.cameras}} for b in starts]
    report = coverage.compute(Path(job.mirror_dir), start, until, cameras=list(job.cameras),
                              primary_dir=Path(job.primary) if job.primary else None, now=now, pool=False,
                              write_index=False)
    answers = []
    for b in starts:
        cameras = {}
        for cam in report.cameras:
            invalid = [[name, at] for name in cam.invalid if b <= (at := _start(name)) < b + BLOCK]
            cameras[cam.id] = {
                "covered": _cut(cam.spans, b), "invalid": invalid,
                "primary": None if cam.primary is None else _cut(cam.primary.spans, b),
                "first": cam.first_start, "problem": cam.problem}
        answers.append({"start": b, "known_from": max(b, start), "known_until": max(b, min(b + BLOCK, until)),
                        "read_at": now, "cameras": cameras})
    return answers


def _cut(spans: Sequence[tuple[float, float]], block: float) -> list[list[float]]:
    return [[round(max(a, block), 3), round(min(b, block + BLOCK), 3)] for a, b in spans
            if a < block + BLOCK and b > block]


def _start(name: str) -> float:
    from ..footage.index import start_of

    return start_of(name) or 0.0


def child_main(job: Job, out: int, parent: int) -> int:
    """In the forked child: die with the listener, hold none of its sockets, read, write, exit."""
    lifeline.die_with_parent(parent, signal.SIGKILL)
    setproctitle.setproctitle(titles.TIMELINES)
    _close_all_but(out)
    gc.disable()  # a day of 100 cameras makes ~300,000 objects that live to the end: collecting them cost a fifth
    try:
        for start, end in runs(job.blocks):
            for answer in read_run(job, start, end):
                os.write(out, json.dumps(answer, separators=(",", ":")).encode() + b"\n")
    except Exception as exc:  # noqa: BLE001 - the listener logs it; the page says the read failed
        os.write(out, json.dumps({"error": f"{type(exc).__name__}: {exc}"[:500]}).encode() + b"\n")
        return 1
    return 0


def _fork(child: Callable[[], int]) -> int:
    """A plain fork (not :func:`lifeline.fork_child`, which freezes the garbage collector's objects
    for the master's copy-on-write: the listener forks a reader every few seconds while a page
    is looked at, and would freeze its garbage each time)."""
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            code = child()
        finally:
            os._exit(code)
    return pid


def _close_all_but(keep: int) -> None:
    """The listening socket and every client connection stay the listener's alone: a child stuck
    on a hung volume must not hold the port (a new listener could not bind it)."""
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd > 2 and fd != keep:
            with contextlib.suppress(OSError):
                os.close(fd)


class Reader:
    """The listener's side: at most one child at a time, its answer taken line by line."""

    def __init__(self, fork: Callable[[Callable[[], int]], int] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.fork, self.clock = fork or _fork, clock
        self.pid: int | None = None
        self.fd: int | None = None
        self.offset = 0
        self.partial = b""
        self.started = 0.0
        self.killed = False
        self.failure: str | None = None  # the last child's error line, or how it ended

    @property
    def running(self) -> bool:
        return self.pid is not None

    def start(self, job: Job) -> bool:
        """Fork a child for ``job``; False when one still runs (or is stuck) or the fork failed."""
        if self.pid is not None or not job.blocks:
            return False
        cameras = tuple(cid for cid in job.cameras if is_safe_id(cid))  # never a path of another kind
        job = Job(job.mirror_dir, job.primary, job.blocks, cameras, job.since)
        fd = os.memfd_create("mirror-supervisor-timelines", os.MFD_CLOEXEC)
        parent = os.getpid()
        try:
            self.pid = self.fork(lambda: child_main(job, fd, parent))
        except OSError as exc:
            os.close(fd)
            self.failure = f"cannot fork the timeline reader: {exc.strerror or exc}"
            return False
        self.fd, self.offset, self.partial, self.started, self.killed = fd, 0, b"", self.clock(), False
        return True

    def collect(self) -> list[dict[str, Any]]:
        """The answers finished since the last call; reaps an ended child, kills one past the limit."""
        if self.pid is None:
            return []
        ended = self._reap()
        answers = self._read()
        if ended:
            self.pid = None
            if self.fd is not None:
                os.close(self.fd)
                self.fd = None
        elif not self.killed and self.clock() - self.started > TIME_LIMIT:
            lifeline.signal_process(self.pid, signal.SIGKILL)
            self.killed = True
            self.failure = f"the timeline reader ran past {TIME_LIMIT:.0f}s and was killed (the mirror volume hangs?)"
        return answers

    def wait(self, seconds: float) -> list[dict[str, Any]]:
        """Collect until the child ends or ``seconds`` passed (the listener's thread waits: keep it short)."""
        deadline = self.clock() + seconds
        answers = self.collect()
        while self.pid is not None and self.clock() < deadline:
            time.sleep(POLL)
            answers += self.collect()
        return answers

    def _reap(self) -> bool:
        assert self.pid is not None
        try:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
        except ChildProcessError:
            return True
        if pid == 0:
            return False
        code = os.waitstatus_to_exitcode(status)
        if code != 0 and not self.killed:
            self.failure = self.failure or (f"the timeline reader ended by signal {-code}" if code < 0
                                            else f"the timeline reader exited with status {code}")
        return True

    def _read(self) -> list[dict[str, Any]]:
        assert self.fd is not None
        chunks = []
        while self.offset < MAX_ANSWER:
            chunk = os.pread(self.fd, 1 << 20, self.offset)
            if not chunk:
                break
            self.offset += len(chunk)
            chunks.append(chunk)
        data = self.partial + b"".join(chunks)
        *lines, self.partial = data.split(b"\n")
        return _answers(lines, self)


def _answers(lines: Sequence[bytes], reader: Reader) -> list[dict[str, Any]]:
    out = []
    for line in lines:
        try:
            answer = json.loads(line)
        except ValueError:
            continue
        if isinstance(answer, dict) and "error" in answer:
            reader.failure = f"the timeline reader failed: {answer['error']}"
        elif isinstance(answer, dict):
            reader.failure = None
            out.append(answer)
    return out
