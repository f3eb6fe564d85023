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

from ..plumbing import lifeline, logs, wakeup
from ..worker.worker import WorkerSpec, run_worker
from .zygote_client import ZygoteClient, ZygoteUnavailable


class System:
    """The real thing. Created before the master's loop; :meth:`install` takes over signals."""

    def __init__(self, locks: Callable[[], tuple[int, ...]] = tuple) -> None:
        self._locks = locks  # the lock fds every worker inherits (cli), handed to the zygote
        self._signals: wakeup.SignalPipe | None = None
        self._subreaper = False
        self._zygote: ZygoteClient | None = None
        self._zygote_problem: str | None = None  # why workers are forked here, logged once

    def install(self) -> bool:
        """Become the reaper of orphaned descendants, and take signals as bytes in a pipe that
        :meth:`wait` watches. False when the kernel refused the subreaper role."""
        self._subreaper = lifeline.become_subreaper()
        self._signals = wakeup.SignalPipe()
        wakeup.unblock_handled()  # the entry point held SIGHUP back until this pipe existed
        return self._subreaper

    def prepare_workers(self, report_fd: int, close_in_child: tuple[int, ...]) -> None:
        """Fork workers from a zygote (:mod:`..worker.zygote`), started at the first worker; only
        as a child subreaper, which the zygote's workers are re-parented to."""
        if self._subreaper:
            self._zygote = ZygoteClient(report_fd, self._locks, close_in_child)

    @property
    def own_fds(self) -> tuple[int, ...]:
        """Descriptors a forked child must close (it makes its own signal pipe)."""
        signals = self._signals.fds if self._signals is not None else ()
        return signals + (self._zygote.fds if self._zygote is not None else ())

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

    def fork_worker(self, spec: WorkerSpec, inherited_fds: tuple[int, ...]) -> int:
        """A new worker, from the zygote when it can make one, else forked here as before."""
        if self._zygote is not None:
            try:
                pid = self._zygote.spawn(spec)
            except ZygoteUnavailable as exc:
                if self._zygote_problem != str(exc):
                    logs.master().warning("forking workers from the master: %s", exc)
                self._zygote_problem = str(exc)
            else:
                if self._zygote_problem is not None:
                    logs.master().info("forking workers from the zygote again")
                self._zygote_problem = None
                return pid
        return self.fork(lambda: run_worker(spec, inherited_fds))

    def close_workers(self) -> None:
        """At shutdown: no more workers; the zygote goes."""
        if self._zygote is not None:
            self._zygote.close()

    def reap(self) -> tuple[int, int] | None:
        """One exited child as (pid, exit code; negative for a signal), or None when none has.
        The zygote is ours to replace, not the master's news."""
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return None
            if pid == 0:
                return None
            if self._zygote is None or not self._zygote.reaped(pid):
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
