"""ffmpeg's stderr: drained so that the pipe never fills and blocks ffmpeg; its tail made a log line.

Kept apart from the worker's loop (:mod:`worker`): the only thread a worker runs, and the only
place ffmpeg's own words are turned into text we log (masked: ffmpeg prints its URL, credentials
included).
"""

from __future__ import annotations

import os
import threading

from ..plumbing.masking import mask

STDERR_TAIL_BYTES = 8192
LOGGED_TAIL_CHARS = 800


class StderrTail(threading.Thread):
    """Drains ffmpeg's stderr so the pipe never fills and blocks ffmpeg; keeps the last bytes."""

    def __init__(self, fd: int, limit: int = STDERR_TAIL_BYTES) -> None:
        super().__init__(name="stderr-tail", daemon=True)
        self._fd = fd
        self._limit = limit
        self._tail = bytearray()
        self._lock = threading.Lock()

    def run(self) -> None:
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

    def text(self) -> str:
        with self._lock:
            return bytes(self._tail).decode("utf-8", "replace")


def summarize_tail(text: str, secrets: tuple[str, ...], limit: int = LOGGED_TAIL_CHARS) -> str:
    """The end of ffmpeg's stderr as one masked log-friendly line."""
    lines = [line.strip() for line in mask(text, secrets).splitlines() if line.strip()]
    joined = " | ".join(lines)
    return joined if len(joined) <= limit else "..." + joined[-limit:]

