"""The operating system as the master sees it: one small object that tests replace.

Every call through which the master touches processes, signals or time goes through
:class:`System`: forking, reaping, signalling a process or a group, asking whether a group
still has members, the clocks, and sleeping until a signal, a readable pipe or a timeout. The
loop's rules (back-off, stop deadlines, leftover groups, shutdown, reload bursts) can then be
driven by a fake in unit tests, with a fake clock and no processes at all.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

from ..plumbing import lifeline, wakeup


class System:
    """The real thing. Created before the master's loop; :meth:`install` takes over signals."""

    def __init__(self) -> None:
        self._signals: wakeup.SignalPipe | None = None

    def install(self) -> bool:
        """Become the reaper of orphaned descendants, and take signals as bytes in a pipe that
        :meth:`wait` watches. False when the kernel refused the subreaper role."""
        subreaper = lifeline.become_subreaper()
        self._signals = wakeup.SignalPipe()
        wakeup.unblock_handled()  # the entry point held SIGHUP back until this pipe existed
        return subreaper

    @property
    def own_fds(self) -> tuple[int, ...]:
        """Descriptors a forked child must close (it makes its own signal pipe)."""
        return self._signals.fds if self._signals is not None else ()

    def monotonic(self) -> float:
        return time.monotonic()

    def time(self) -> float:
        return time.time()

    def wait(self, timeout: float, fds: tuple[int, ...] = ()) -> tuple[list[int], list[int]]:
        """Sleep until a signal, a readable fd among ``fds``, or ``timeout``: (signals, readable)."""
        assert self._signals is not None
        return self._signals.wait(timeout, fds)

    def fork(self, child: Callable[[], int]) -> int:
        return lifeline.fork_child(child)

    def reap(self) -> tuple[int, int] | None:
        """One exited child as (pid, exit code; negative for a signal), or None when none has."""
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return None
        if pid == 0:
            return None
        return pid, os.waitstatus_to_exitcode(status)

    def make_group_leader(self, pid: int) -> None:
        try:
            os.setpgid(pid, pid)
        except OSError:
            pass  # the child did it first, or already exited

    def kill(self, pid: int, sig: int) -> None:
        lifeline.signal_process(pid, sig)

    def killpg(self, pgid: int, sig: int) -> None:
        lifeline.signal_group(pgid, sig)

    def group_alive(self, pgid: int) -> bool:
        return lifeline.group_alive(pgid)

    def pipe(self) -> tuple[int, int]:
        """The workers' report pipe: non-blocking, so a worker can never block on reporting."""
        return os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)

    def read(self, fd: int) -> bytes:
        """Everything readable now (b"" when nothing is)."""
        chunks = []
        while True:
            try:
                chunk = os.read(fd, 65536)
            except BlockingIOError:
                break
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks)
