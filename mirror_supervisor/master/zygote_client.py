"""The master's side of the zygote (:mod:`..worker.zygote`): start it, keep spares, replace it.

Nothing here may wedge the master or start a worker the master does not know:

- a spare only becomes a worker when the master writes a spec into its pipe, and the master knows
  its pid before it does so; a spare that died meanwhile is found by that write (EPIPE) and the
  next one is taken;
- waiting for a spare (at most :data:`SPAWN_TIMEOUT`; only when none is ready) is the one wait,
  and a zygote that does not answer within it is SIGKILLed with its go-betweens (its process
  group) and replaced at the next request, at most once per :data:`RESTART_INTERVAL`; in
  between (and where the master is no child subreaper, so a spare could not be re-parented to
  it) workers are forked from the master as before;
- the lock descriptors the workers must inherit are handed to the zygote when it starts; when
  they change (a reload that moves the mirror lock), the zygote and its spares are replaced
  before the next worker, so no worker ever holds a lock the master has let go.
"""

from __future__ import annotations

import array
import os
import signal
import socket
import sys
import time
from collections.abc import Callable

from ..plumbing import files, lifeline, logs, wakeup
from ..worker import zygote
from ..worker.worker import WorkerSpec

SPARES = 2  # made ahead: a reload's new camera takes one at once, a start of hundreds keeps the zygote busy
SPAWN_TIMEOUT = 5.0  # two forks of a small process take milliseconds; only a stopped zygote is slower
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
        self._sock: socket.socket | None = None
        self._spares: list[tuple[int, int]] = []  # (pid, write end of its spec pipe), oldest first
        self._asked = 0  # spares asked for and not announced yet
        self._kept: tuple[tuple[int, int, int], ...] = ()  # (fd, dev, ino) handed to the running zygote
        self._ready = False
        self._last_start = -float("inf")
        self._closed = False  # shutdown: its exit is expected, and it is not replaced

    @property
    def fds(self) -> tuple[int, ...]:
        """The master's descriptors of the zygote and its spares, which no other child may hold (a
        spare ends when its pipe's only writer closes it)."""
        return ((self._sock.fileno(),) if self._sock is not None else ()) + tuple(fd for _, fd in self._spares)

    # -- making a worker -----------------------------------------------------------------------

    def spawn(self, spec: WorkerSpec) -> int:
        """A spare turned into the worker of ``spec``: its pid (its process group already made);
        :class:`ZygoteUnavailable` when there is none now."""
        if self._closed:
            raise ZygoteUnavailable("shutting down")
        self._ensure_running()
        request = zygote.encode_request(spec)
        for _ in range(SPARES + 2):
            pid, fd = self._take_spare()
            try:
                files.write_all(fd, request)
            except OSError:
                continue  # it died meanwhile (the master reaps it as an unknown child)
            finally:
                os.close(fd)
                self._top_up(later=bool(self._spares))  # a spare left: the new worker starts first
            return pid
        raise ZygoteUnavailable("the spares died before they could be used")

    def _take_spare(self) -> tuple[int, int]:
        self._collect(wait=False)
        if not self._spares:
            self._top_up()
            deadline = self.monotonic() + SPAWN_TIMEOUT
            while not self._spares:
                if not self._collect(wait=True, deadline=deadline):
                    self._abandon(f"no spare within {SPAWN_TIMEOUT:.0f}s")
                    raise ZygoteUnavailable("the zygote did not answer")
        return self._spares.pop(0)

    def _top_up(self, later: bool = False) -> None:
        """Ask for spares until SPARES are ready or on their way (never blocks: one byte each);
        ``later``: not urgent, the zygote lets a worker that is starting have the CPU first."""
        if self._sock is None:
            return
        try:
            while len(self._spares) + self._asked < SPARES:
                self._sock.send(zygote.ASK_LATER if later else zygote.ASK, socket.MSG_DONTWAIT)
                self._asked += 1
        except OSError:
            pass  # full or gone: found out when a spare is needed

    def _collect(self, wait: bool, deadline: float = 0.0) -> bool:
        """Take the announcements that arrived (waiting for one until ``deadline`` if ``wait``);
        False when none came."""
        assert self._sock is not None
        got = False
        while True:
            if wait and not got and not wakeup.readable(self._sock.fileno(), deadline - self.monotonic()):
                return False
            try:
                data, ancillary, _, _ = self._sock.recvmsg(zygote.ANNOUNCE.size, socket.CMSG_SPACE(4),
                                                           socket.MSG_DONTWAIT | socket.MSG_CMSG_CLOEXEC)
            except (BlockingIOError, InterruptedError):
                return got
            except OSError:
                return got
            if len(data) < zygote.ANNOUNCE.size:
                return got  # the zygote closed its end: its exit is reaped
            kind, value = zygote.ANNOUNCE.unpack(data)
            fds = array.array("i")
            for level, kind_of, payload in ancillary:
                if level == socket.SOL_SOCKET and kind_of == socket.SCM_RIGHTS:
                    fds.frombytes(payload[: len(payload) - len(payload) % fds.itemsize])
            got = self._announced(kind, value, list(fds)) or got

    def _announced(self, kind: int, value: int, fds: list[int]) -> bool:
        if kind == zygote.READY:
            self._ready = True
            return True
        if kind == zygote.UNREHEARSED:
            self.log.warning("zygote: its rehearsal of a worker's start failed (its reason is on its stderr); "
                             "workers work, each with more private memory")
            return False
        self._asked = max(0, self._asked - 1)
        if kind == zygote.SPARE and fds:
            self._spares.append((value, fds[0]))
            for extra in fds[1:]:
                os.close(extra)
            return True
        for fd in fds:
            os.close(fd)
        self.log.warning("zygote could not make a spare worker: %s", os.strerror(-value) if value < 0 else value)
        return False

    # -- starting and replacing the zygote -----------------------------------------------------------

    def _ensure_running(self) -> None:
        if self.pid is not None and self._kept != self._identify(self.keep_fds()):
            self._abandon("the locks the workers inherit changed (reload)", restart_now=True)
        if self.pid is None:
            if self.monotonic() - self._last_start < RESTART_INTERVAL:
                raise ZygoteUnavailable("the zygote was replaced less than 10s ago")
            self._start()
        if not self._ready:
            deadline = self.monotonic() + BOOT_TIMEOUT
            while not self._ready:
                if not self._collect(wait=True, deadline=deadline):
                    self._abandon("it did not start")
                    raise ZygoteUnavailable("the zygote did not start")
            self.log.info("zygote ready pid=%d", self.pid)
            self._top_up()

    def _start(self) -> None:
        self._last_start = self.monotonic()
        keep = self.keep_fds()
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)  # both close on exec
        argv = [sys.executable, "-m", "mirror_supervisor.worker.zygote", str(theirs.fileno()), str(os.getpid())]
        inherit = (theirs.fileno(), self.report_fd, *keep)
        master_pid = os.getpid()
        close = (*self.close_in_child, *self.fds, ours.fileno())

        def child() -> int:
            lifeline.become_helper(zygote.TITLE, close, master_pid)
            os.setpgid(0, 0)  # its own group: a terminal's ^C is the master's to handle
            for fd in inherit:
                os.set_inheritable(fd, True)
            os.execv(sys.executable, argv)
            return 127

        try:
            self.pid = lifeline.fork_child(child)
        except OSError as exc:
            ours.close()
            raise ZygoteUnavailable(f"cannot fork the zygote: {exc.strerror or exc}") from None
        finally:
            theirs.close()
        self._sock, self._kept, self._ready, self._asked = ours, self._identify(keep), False, 0

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

    def _abandon(self, why: str, restart_now: bool = False) -> None:
        """Kill the zygote and its go-betweens; let its spares go (they exit when their pipes
        close): nothing of this zygote becomes a worker any more."""
        if self.pid is not None:
            (self.log.info if restart_now else self.log.error)("zygote pid=%d replaced: %s", self.pid, why)
            lifeline.signal_group(self.pid, signal.SIGKILL)
            self._reap_group(self.pid)
        self._forget()
        if restart_now:
            self._last_start = -float("inf")

    def _forget(self) -> None:
        for _, fd in self._spares:
            os.close(fd)
        self._spares, self._asked = [], 0
        if self._sock is not None:
            self._sock.close()
        self.pid, self._sock, self._ready, self._kept = None, None, False, ()

    def _reap_group(self, pgid: int) -> None:
        """Reap the killed zygote and its go-betweens (ours once it died): dead, none can send."""
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
        if not self._closed:
            self.log.warning("zygote pid=%d exited; workers are forked by the master until it is replaced", pid)
        self._forget()
        return True

    def close(self) -> None:
        """At shutdown: no more workers; the zygote and the spares end (they die with us anyway)."""
        self._closed = True
        if self.pid is not None:
            lifeline.signal_process(self.pid, signal.SIGKILL)
        pid = self.pid
        self._forget()
        self.pid = pid  # reaped() recognises it
