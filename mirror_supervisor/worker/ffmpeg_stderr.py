"""ffmpeg's stderr: drained so that the pipe never fills and blocks ffmpeg; its tail made a log line.

Kept apart from the worker's loop (:mod:`worker`): the only thread a worker runs, and the only
place ffmpeg's own words are turned into text we log (masked: ffmpeg prints its URL, credentials
included).
"""

from __future__ import annotations

import _thread
import os

from ..plumbing.masking import mask

STDERR_TAIL_BYTES = 8192
LOGGED_TAIL_CHARS = 800


class StderrTail:
    """Drains ffmpeg's stderr so the pipe never fills and blocks ffmpeg; keeps the last bytes.

    One plain ``_thread``, not a ``threading.Thread``: starting it does not wait for the thread to
    run (the worker logs ffmpeg's start and watches it at once), and a worker carries none of
    ``threading``'s bookkeeping (events, conditions, the registry of threads) in its own pages.
    """

    def __init__(self, fd: int, limit: int = STDERR_TAIL_BYTES) -> None:
        self._fd = fd
        self._limit = limit
        self._tail = bytearray()
        self._lock = _thread.allocate_lock()
        self._running = _thread.allocate_lock()  # held by the thread from start to end

    def start(self) -> None:
        self._running.acquire()
        try:
            _thread.start_new_thread(self._run, ())
        except BaseException:
            self._running.release()
            raise

    def join(self, timeout: float) -> bool:
        """Wait up to ``timeout`` for the thread to reach the end of stderr; True when it did."""
        if self._running.acquire(timeout=max(0.0, timeout)):
            self._running.release()
            return True
        return False

    def _run(self) -> None:
        try:
            while True:
                try:
                    chunk = os.read(self._fd, 4096)
                except InterruptedError:
                    continue
                except OSError:
                    return
                if not chunk:
                    return
                with self._lock:
                    self._tail += chunk
                    if len(self._tail) > self._limit:
                        del self._tail[: len(self._tail) - self._limit]
        finally:
            self._running.release()

    def text(self) -> str:
        with self._lock:
            return bytes(self._tail).decode("utf-8", "replace")


def summarize_tail(text: str, secrets: tuple[str, ...], limit: int = LOGGED_TAIL_CHARS) -> str:
    """The end of ffmpeg's stderr as one masked log-friendly line."""
    lines = [line.strip() for line in mask(text, secrets).splitlines() if line.strip()]
    joined = " | ".join(lines)
    return joined if len(joined) <= limit else "..." + joined[-limit:]

