"""A kept child that asks a volume for us: ``stat`` one path, answer one byte, wait for the next.

The master asks the database's volume before every read of the database (a hard-mounted share
that hangs would otherwise hang the master's loop in the kernel). A fresh child per ask
(:func:`volume.ask`) cost 3-4 ms of fork and exit on every poll and on every reload, more as the
master grows; this child is forked once and asked over a pipe in about a tenth of a millisecond.

What makes it safe is the same as for a child per ask: the master waits for the answer with a
deadline and never stats the volume itself. A child that does not answer in time is SIGKILLed;
one the kernel holds even against that (it sleeps in the volume's wait) is left, named in the
answer (``Asked.stuck``), and a later ask forks a new child. The child holds nothing but its two
pipe ends (a restarted master finds no lock of ours held by a stuck child) and dies with the master.
"""

from __future__ import annotations

import os
import signal
import struct
import time
from pathlib import Path

import setproctitle

from . import titles, wakeup
from .files import read_exact
from .volume import Asked

_LENGTH = struct.Struct("!I")
KILL_WAIT = 0.5  # a killable wait ends within this; an unkillable one is not waited for


class Asker:
    """The master's handle; ``ask`` never raises and never waits past its ``timeout``."""

    def __init__(self) -> None:
        self.pid: int | None = None
        self._request_w = self._answer_r = -1

    @property
    def fds(self) -> tuple[int, ...]:
        """Our ends of its pipes, which no other child of ours may hold."""
        return tuple(fd for fd in (self._request_w, self._answer_r) if fd >= 0)

    def ask(self, path: Path, timeout: float) -> Asked:
        """Does the volume holding ``path`` answer a ``stat`` within ``timeout``? An error such as
        ENOENT is an answer (the caller meets it and reports it)."""
        name = os.fsencode(str(path))
        for _ in range(2):  # a child that died since the last ask is replaced once
            if self.pid is None and (refused := self._start()) is not None:
                return Asked(False, refused=refused)
            try:
                os.write(self._request_w, _LENGTH.pack(len(name)) + name)  # into an empty pipe: never blocks
                break
            except OSError:
                self._forget()  # it died (the master reaps it as an unknown child)
        else:
            return Asked(False, refused="the asking child ended at once")
        if wakeup.readable(self._answer_r, timeout):
            try:
                if os.read(self._answer_r, 1):
                    return Asked(True)
            except OSError:
                pass
        return self._give_up()

    def _give_up(self) -> Asked:
        """No answer in time: SIGKILL it; reaped here if it dies now, else left and named."""
        pid = self.pid
        assert pid is not None
        self._forget()
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + KILL_WAIT
        while time.monotonic() < deadline:
            try:
                if os.waitpid(pid, os.WNOHANG)[0] == pid:
                    return Asked(False)
            except ChildProcessError:
                return Asked(False)
            time.sleep(0.01)
        return Asked(False, stuck=pid)

    def reaped(self, pid: int) -> bool:
        """Our child ended (reaped by the master's loop); the next ask forks another."""
        if pid != self.pid:
            return False
        self._forget()
        return True

    def close(self) -> None:
        """It reads end of file and exits (and dies with us anyway)."""
        self._forget()

    def _start(self) -> str | None:
        request_r, request_w = os.pipe2(os.O_CLOEXEC)
        answer_r, answer_w = os.pipe2(os.O_CLOEXEC)
        master = os.getpid()
        wakeup.block_handled()  # until the child has undone the master's handlers
        try:
            pid = os.fork()
        except OSError as exc:
            wakeup.unblock_handled()
            for fd in (request_r, request_w, answer_r, answer_w):
                os.close(fd)
            return f"cannot fork to ask: {exc.strerror or exc}"
        if pid == 0:  # pragma: no cover - the child
            code = 1
            try:
                code = _serve(request_r, answer_w, master)
            finally:
                os._exit(code)
        wakeup.unblock_handled()
        os.close(request_r)
        os.close(answer_w)
        self.pid, self._request_w, self._answer_r = pid, request_w, answer_r
        return None

    def _forget(self) -> None:
        for fd in self.fds:
            os.close(fd)
        self.pid, self._request_w, self._answer_r = None, -1, -1


def _serve(request_r: int, answer_w: int, master: int) -> int:
    """The child: only its two pipe ends open, the master's signal handling undone, dying with it."""
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT, signal.SIGHUP, signal.SIGCHLD):
        signal.signal(sig, signal.SIG_DFL)
    signal.set_wakeup_fd(-1)
    low, high = sorted((request_r, answer_w))
    os.closerange(0, low)
    os.closerange(low + 1, high)
    os.closerange(high + 1, os.sysconf("SC_OPEN_MAX"))
    from .lifeline import die_with_parent

    die_with_parent(master, signal.SIGKILL)
    signal.pthread_sigmask(signal.SIG_SETMASK, [])
    setproctitle.setproctitle(titles.VOLUME_PROBE)  # if it stays stuck, ps says what it is
    while True:
        try:
            (size,) = _LENGTH.unpack(read_exact(request_r, _LENGTH.size))
            path = read_exact(request_r, size)
        except EOFError:
            return 0
        try:
            os.stat(path)
        except OSError:
            pass  # an error is an answer too
        os.write(answer_w, b"1")
