"""The master's side of the zygote (:mod:`..worker.zygote`): start it, ask it for workers, replace it.

Nothing here may wedge the master or lose a worker:

- a request is answered within :data:`SPAWN_TIMEOUT` or the zygote is SIGKILLed with its
  go-betweens (its process group), and the reply pipe read once more after they are gone: a
  worker whose pid was written in time is taken, any other never got its "go" and has exited;
- a zygote that cannot start, dies, or falls out of step is replaced at the next request, at most
  once per :data:`RESTART_INTERVAL`; in between (and where the master is no child subreaper, so
  a worker could not be re-parented to it) workers are forked from the master as before;
- the lock descriptors the workers must inherit are handed to the zygote when it starts; when
  they change (a reload that moves the mirror lock), the zygote is replaced before the next
  worker, so no worker ever holds a lock the master has let go.
"""

from __future__ import annotations

import os
import select
import signal
import sys
import time
from collections.abc import Callable

from ..plumbing import lifeline, logs
from ..worker import zygote
from ..worker.worker import WorkerSpec

SPAWN_TIMEOUT = 5.0  # a fork of a small process takes a millisecond; only a stopped zygote is slower
BOOT_TIMEOUT = 20.0  # a fresh interpreter and the worker's imports, on a busy machine
RESTART_INTERVAL = 10.0
KILL_WAIT = 2.0


class ZygoteUnavailable(Exception):
    """No worker from the zygote now; the message says why. The master forks the worker itself."""


class ZygoteClient:
    def __init__(self, report_fd: int, keep_fds: Callable[[], tuple[int, ...]], close_in_child: tuple[int, ...],
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.report_fd = report_fd
        self.keep_fds = keep_fds  # the locks, read at every start
        self.close_in_child = close_in_child  # the master's own descriptors
        self.monotonic = monotonic
        self.pid: int | None = None
        self.log = logs.master()
        self._request_w = self._reply_r = -1
        self._kept: tuple[tuple[int, int, int], ...] = ()  # (fd, dev, ino) handed to the running zygote
        self._ready = False
        self._last_start = -float("inf")
        self._closed = False  # shutdown: its exit is expected, and it is not replaced

    @property
    def fds(self) -> tuple[int, ...]:
        """The master's ends of the pipes, which no other child may hold (the zygote ends when the
        request pipe's last writer closes it)."""
        return tuple(fd for fd in (self._request_w, self._reply_r) if fd >= 0)

    # -- asking for a worker -------------------------------------------------------------------

    def spawn(self, spec: WorkerSpec) -> int:
        """The new worker's pid, its process group already made; :class:`ZygoteUnavailable` when
        the zygote cannot make it now."""
        if self._closed:
            raise ZygoteUnavailable("shutting down")
        self._ensure_running()
        try:
            zygote._write_all(self._request_w, zygote.encode_request(spec))
        except OSError as exc:
            self._abandon(f"cannot write to it: {exc.strerror or exc}")
            raise ZygoteUnavailable("the zygote is gone") from None
        pid = self._answer(spec.generation)
        if pid is None:
            raise ZygoteUnavailable("the zygote did not answer")
        if pid < 0:
            raise ZygoteUnavailable(f"the zygote could not fork: {os.strerror(-pid)}")
        return pid

    def _answer(self, generation: int) -> int | None:
        deadline = self.monotonic() + SPAWN_TIMEOUT
        while True:
            reply = self._read_reply(deadline)
            if reply is None:
                return self._abandon(f"no answer within {SPAWN_TIMEOUT:.0f}s", generation)
            got, pid = reply
            if got == generation:
                return pid
            self._stray(got, pid)

    def _read_reply(self, deadline: float) -> tuple[int, int] | None:
        poller = select.poll()
        poller.register(self._reply_r, select.POLLIN)
        while True:
            left = deadline - self.monotonic()
            if left <= 0:
                return None
            try:
                if not poller.poll(left * 1000.0):
                    return None
                data = zygote._read_exact(self._reply_r, zygote.REPLY.size)
            except InterruptedError:
                continue
            except (OSError, EOFError):
                return None
            generation, pid = zygote.REPLY.unpack(data)
            return generation, pid

    def _stray(self, generation: int, pid: int) -> None:
        """A worker the master is not waiting for (an answer that came after its request was given
        up): it must not record beside the one that replaced it."""
        if pid > 0 and generation != zygote.READY:
            self.log.error("zygote answered for gen=%d pid=%d, which is not awaited; killing it", generation, pid)
            lifeline.signal_group(pid, signal.SIGKILL)

    # -- starting and replacing the zygote -----------------------------------------------------------

    def _ensure_running(self) -> None:
        if self.pid is not None and self._kept != self._identify(self.keep_fds()):
            self._abandon("the locks the workers inherit changed (reload)", restart_now=True)
        if self.pid is None:
            if self.monotonic() - self._last_start < RESTART_INTERVAL:
                raise ZygoteUnavailable("the zygote was replaced less than 10s ago")
            self._start()
        if not self._ready:
            reply = self._read_reply(self.monotonic() + BOOT_TIMEOUT)
            if reply is None or reply[0] != zygote.READY:
                self._abandon("it did not start")
                raise ZygoteUnavailable("the zygote did not start")
            self._ready = True
            self.log.info("zygote ready pid=%d", self.pid)

    def _start(self) -> None:
        self._last_start = self.monotonic()
        keep = self.keep_fds()
        request_r, self._request_w = os.pipe2(os.O_CLOEXEC)
        self._reply_r, reply_w = os.pipe2(os.O_CLOEXEC)
        argv = [sys.executable, "-m", "mirror_supervisor.worker.zygote", str(request_r), str(reply_w), str(os.getpid())]
        inherit = (request_r, reply_w, self.report_fd, *keep)
        master_pid = os.getpid()

        def child() -> int:
            lifeline.become_helper(zygote.TITLE, (*self.close_in_child, self._request_w, self._reply_r), master_pid)
            os.setpgid(0, 0)  # its own group: a terminal's ^C is the master's to handle
            for fd in inherit:
                os.set_inheritable(fd, True)
            os.execv(sys.executable, argv)
            return 127

        try:
            self.pid = lifeline.fork_child(child)
        except OSError as exc:
            self._close_pipes()
            raise ZygoteUnavailable(f"cannot fork the zygote: {exc.strerror or exc}") from None
        finally:
            os.close(request_r)
            os.close(reply_w)
        self._kept, self._ready = self._identify(keep), False

    @staticmethod
    def _identify(fds: tuple[int, ...]) -> tuple[tuple[int, int, int], ...]:
        found = []
        for fd in fds:
            try:
                st = os.fstat(fd)
            except OSError:
                continue
            found.append((fd, st.st_dev, st.st_ino))
        return tuple(found)

    def _abandon(self, why: str, generation: int | None = None, restart_now: bool = False) -> int | None:
        """Kill the zygote and its go-betweens, then take the answer for ``generation`` if it was
        written before they died (nothing can write after). Returns that pid, or None."""
        if self.pid is not None:
            (self.log.info if restart_now else self.log.error)("zygote pid=%d replaced: %s", self.pid, why)
            lifeline.signal_group(self.pid, signal.SIGKILL)  # the zygote and any go-between
            self._reap_group(self.pid)
        found: int | None = None
        if self._reply_r >= 0 and generation is not None:
            while (reply := self._read_reply(self.monotonic() + 0.05)) is not None:
                if reply[0] == generation:
                    found = reply[1]
                else:
                    self._stray(*reply)
        self._close_pipes()
        self.pid, self._ready, self._kept = None, False, ()
        if restart_now:
            self._last_start = -float("inf")
        return found

    def _reap_group(self, pgid: int) -> None:
        """Reap the killed zygote and its go-betweens (ours once it died): dead, none can write."""
        give_up = self.monotonic() + KILL_WAIT
        while self.monotonic() < give_up:
            try:
                pid, _ = os.waitpid(-pgid, os.WNOHANG)
            except ChildProcessError:
                return  # none left in the group
            if pid == 0:
                time.sleep(0.005)
        self.log.error("zygote group %d not gone %.0fs after SIGKILL (%s)", pgid, KILL_WAIT, lifeline.describe(pgid))

    def reaped(self, pid: int) -> bool:
        """The master reaped ``pid``; True when it was our zygote (which then needs replacing)."""
        if pid != self.pid:
            return False
        if self._closed:
            self.pid = None
            return True
        self.log.warning("zygote pid=%d exited; workers are forked by the master until it is replaced", pid)
        self._close_pipes()
        self.pid, self._ready, self._kept = None, False, ()
        return True

    def close(self) -> None:
        """At shutdown: the zygote ends when its request pipe closes (and dies with us anyway)."""
        self._closed = True
        if self.pid is not None:
            lifeline.signal_process(self.pid, signal.SIGKILL)
        self._close_pipes()

    def _close_pipes(self) -> None:
        for fd in self.fds:
            try:
                os.close(fd)
            except OSError:
                pass
        self._request_w = self._reply_r = -1
