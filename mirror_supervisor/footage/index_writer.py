"""The worker's index writes, off its main loop (docs/design.md, "Coverage").

The index lives on the mirror volume and SQLite locks it with ``fcntl``. On an NFS mirror whose
lock daemon hangs, taking a lock waits in the kernel while the segments themselves are written
and read as usual, and it waits with no bound: SQLite's busy timeout only covers a lock that is
refused, not a request that never returns. Written from the worker's loop, such a wait would stop
its stall checks, its restarts of ffmpeg and its reaction to a stop, for as long as the volume's
lock service is gone.

So the loop only queues the names of finished segments (:meth:`Indexer.done`, never blocking) and
one thread of the worker probes and writes them. The queue is bounded: when the thread is stuck,
further names are dropped (logged once; ``coverage`` reads those segments from their files), so a
long hang costs no memory. The thread is a daemon: a worker that ends leaves it behind, and its
exit ends it even inside a killable kernel wait (NFS hard mounts wait killably). At a stop the
worker gives it a moment to finish what is queued (:meth:`Indexer.close`), never longer.

The thread never forks and never changes credentials (:mod:`owner` refuses to switch while it
runs), so the worker's rule of starting ffmpeg from its main thread holds.
"""

from __future__ import annotations

import logging
import queue
import threading
from pathlib import Path

from . import mp4
from .index import SegmentIndex, row_from, start_of
from .segments import parse_name, segment_names

QUEUE_LIMIT = 64  # finished segments waiting to be indexed; a stuck index drops the rest
CLOSE_SECONDS = 0.5  # at a stop: what is not written by then is left to coverage

_Item = tuple[str | None, float | None]  # (segment name, None) or (last known segment, ffmpeg start)


class Indexer:
    """A worker's hook: index each segment ffmpeg has finished; never raises, never blocks.

    ``done`` is called when ffmpeg moved on from a segment (the next one has started), ``ended``
    when ffmpeg ended; both only queue. Failures are logged once, as are dropped names.
    """

    def __init__(self, directory: Path, camera: str, log: logging.Logger | logging.LoggerAdapter) -> None:
        self.directory = Path(directory)
        self.camera = camera
        self.log = log
        self.failing = False  # the writing thread's: the last write failed
        self.last: str | None = None  # the writing thread's: the last name it indexed
        self._queued: str | None = None  # the loop's: the last name it queued
        self._dropped = 0  # the loop's: names dropped since the queue was last free
        self._queue: queue.Queue[_Item | None] = queue.Queue(QUEUE_LIMIT)
        self._thread: threading.Thread | None = None

    # -- the worker's loop ----------------------------------------------------------------------

    def done(self, name: str | None) -> None:
        """ffmpeg moved on from ``name``: index it."""
        if not name or name == self._queued or start_of(name) is None:
            return
        self._queued = name
        self._put((name, None))

    def ended(self, current: str | None, started: float) -> None:
        """ffmpeg ended: index the segment it was known to write and any it opened after that (the
        worker checks once a second, so a segment opened just before the end is unseen); the
        directory is listed by the thread, too."""
        self._put((current, started))

    def close(self, timeout: float = CLOSE_SECONDS) -> bool:
        """Give the thread up to ``timeout`` to write what is queued; True when it did."""
        if self._thread is None:
            return True
        try:
            self._queue.put_nowait(None)
        except queue.Full:
            return False
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _put(self, item: _Item) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=f"index {self.camera}", daemon=True)
            self._thread.start()
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            if not self._dropped:
                self.log.warning("segment index writes are stuck (%d segments waiting); not indexing newer "
                                 "segments until they move on (coverage reads those from their files)",
                                 QUEUE_LIMIT)
            self._dropped += 1
            return
        if self._dropped and self._queue.qsize() <= QUEUE_LIMIT // 2:  # not on every slot that frees
            self.log.info("segment index writes move again; %d segments were left to coverage", self._dropped)
            self._dropped = 0

    # -- the writing thread ---------------------------------------------------------------------

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            name, started = item
            if started is None:
                self._index(name)
            else:
                self._index_ended(name, started)

    def _index_ended(self, current: str | None, started: float) -> None:
        self._index(current)
        try:
            later = sorted(n for n in segment_names(self.directory)
                           if (current is None or n > current) and (parse_name(n) or 0) >= started - 2)
        except OSError:
            return
        for name in later:
            self._index(name)

    def _index(self, name: str | None) -> None:
        """Probe one finished segment and write its row, in a connection of its own."""
        if not name or name == self.last or start_of(name) is None:
            return
        self.last = name
        try:
            info = mp4.probe(self.directory / name)
            row = row_from(name, info)
            if row is None or (info.problem or "").startswith("unreadable: No such file"):
                return  # moved aside or pruned meanwhile
            with SegmentIndex(self.directory.parent, make_dir=True) as index:
                index.put(self.camera, [row])
        except Exception as exc:  # noqa: BLE001 - whatever it is, recording goes on
            if not self.failing:
                self.log.warning("cannot index segment %s: %s; recording goes on (logged once)", name, exc)
            self.failing = True
            return
        if self.failing:
            self.log.info("segment index written again")
        self.failing = False
