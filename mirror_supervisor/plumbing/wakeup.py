"""Signals as bytes in a pipe, read by the main loop (the self-pipe pattern of a pre-fork arbiter).

Python's C-level handler writes each caught signal's number into the pipe; the Python-level
handler does nothing. The main loop ``poll``s the pipe with a timeout, so it sleeps until a
signal or a deadline, and handles signals in ordinary code, never inside a handler.
"""

from __future__ import annotations

import os
import select
import signal
import time

HANDLED_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT, signal.SIGHUP, signal.SIGCHLD)
# Signals nobody should send us but a habit might (``kill -USR1`` to reopen logs): ignored, since
# their default action would end recording. Log files are reopened without any signal.
IGNORED_SIGNALS = (signal.SIGUSR1, signal.SIGUSR2)
STOP_SIGNALS = frozenset((signal.SIGTERM, signal.SIGINT, signal.SIGQUIT))
# The C functions under ``signal``'s Python wrappers, which turn every result into enum members:
# run in each worker, that enum machinery cost about 30 KiB of copied pages (docs/benchmarks.md,
# "Worker memory"). CPython's own module; elsewhere, the wrappers.
try:
    import _signal  # type: ignore[import-not-found]

    _set_handler, _set_mask, _IGNORE = _signal.signal, _signal.pthread_sigmask, _signal.SIG_IGN
except ImportError:  # pragma: no cover - not CPython
    _set_handler, _set_mask, _IGNORE = signal.signal, signal.pthread_sigmask, signal.SIG_IGN


def _ignore_here(signum: int, frame: object) -> None:
    """The signal number already went into the wake-up pipe; the main loop acts on it."""


class SignalPipe:
    """Owned by one process's main thread; recreate it in a forked child."""

    def __init__(self) -> None:
        self.read_fd, self.write_fd = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        signal.set_wakeup_fd(self.write_fd, warn_on_full_buffer=False)
        for sig in HANDLED_SIGNALS:
            _set_handler(sig, _ignore_here)
        for sig in IGNORED_SIGNALS:
            _set_handler(sig, _IGNORE)

    @property
    def fds(self) -> tuple[int, int]:
        return self.read_fd, self.write_fd

    def wait(self, timeout: float, also: tuple[int, ...] = ()) -> tuple[list[int], list[int]]:
        """Sleep until a signal arrives, one of ``also`` is readable, or ``timeout`` passes.

        Returns the distinct signals received (a burst of one signal counts once) and the fds
        of ``also`` that are readable.
        """
        # poll(), not select(): select() cannot watch a descriptor numbered 1024 or more, which
        # a master with hundreds of workers and their pipes reaches.
        poller = select.poll()
        for fd in (self.read_fd, *also):
            poller.register(fd, select.POLLIN)
        try:
            events = poller.poll(max(0.0, timeout) * 1000.0)
        except InterruptedError:
            events = [(self.read_fd, select.POLLIN)]
        readable = [fd for fd, _ in events]
        signals: list[int] = []
        if self.read_fd in readable:
            try:
                signals = list(dict.fromkeys(os.read(self.read_fd, 4096)))
            except BlockingIOError:
                pass
        return signals, [fd for fd in readable if fd != self.read_fd]


def readable(fd: int, timeout: float) -> bool:
    """Wait up to ``timeout`` for ``fd`` to be readable (end of file counts); a signal does not
    end the wait early."""
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    deadline = time.monotonic() + timeout
    while True:
        try:
            return bool(poller.poll(max(0.0, deadline - time.monotonic()) * 1000.0))
        except InterruptedError:
            continue


def block_handled() -> None:
    """Around fork: a signal arriving before the child has its own pipe must wait, not go to ours."""
    _set_mask(signal.SIG_BLOCK, HANDLED_SIGNALS)


def unblock_handled() -> None:
    _set_mask(signal.SIG_UNBLOCK, HANDLED_SIGNALS)


def unblock_all() -> None:
    _set_mask(signal.SIG_SETMASK, ())
