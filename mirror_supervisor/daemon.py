"""Being a well-behaved daemon: a lock, a pidfile, detaching, and finding the running master.

The lock (``flock`` on ``<state_dir>/mirror-supervisor.lock``) is what really prevents two
masters: it is held by the master *and inherited by its workers*, so while any worker of an old
master is still stopping its ffmpeg, a new master cannot start a second ffmpeg for the same
camera. The pidfile is only a pointer for ``reload``/``stop``/``status`` and init scripts; it is
written atomically once the master is ready and removed on exit only if it still names us.

The state-dir lock alone lets two masters with *different* state dirs record into one mirror dir
(two ffmpegs per camera fighting over segment names). So the master also locks
``<mirror_dir>/.mirror-supervisor.lock`` the same way (inherited by workers, waited for while a
dead master's workers stop) and writes its pid into it, so a refusal can name the other master.
That file is opened once at start (and on a reload that changes the mirror dir), never
periodically: the mirror may be a hung NFS mount. On NFS, ``flock`` is emulated with POSIX locks,
which workers do not inherit: there it covers the master's life only.
"""

from __future__ import annotations

import errno
import fcntl
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import psutil

from .files import PIDFILE_MODE, open_lock_file, write_atomically

PIDFILE = "mirror-supervisor.pid"
LOCKFILE = "mirror-supervisor.lock"
MIRROR_LOCKFILE = ".mirror-supervisor.lock"
MASTER_TITLE = "mirror-supervisor: master"


class AlreadyRunning(Exception):
    """Another master holds the lock; the message says which."""


def read_pid(state_dir: Path) -> int | None:
    try:
        text = (Path(state_dir) / PIDFILE).read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() and int(text) > 0 else None


def is_master(pid: int) -> bool:
    """Is ``pid`` alive and a mirror-supervisor master (not a reused pid of another program)?"""
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        return " ".join(proc.cmdline()).startswith(MASTER_TITLE)
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False


def running_master(state_dir: Path) -> int | None:
    pid = read_pid(state_dir)
    return pid if pid is not None and is_master(pid) else None


def acquire_lock(state_dir: Path, wait: float) -> int:
    """Take the lock, waiting up to ``wait`` s for the workers of a dead master to finish.

    A live master holding it is refused at once; returns the locked fd, to keep open.
    """
    path = Path(state_dir) / LOCKFILE

    def live_holder(fd: int) -> str | None:
        pid = running_master(state_dir)
        return None if pid is None else f"already running as pid {pid} (pidfile {Path(state_dir) / PIDFILE})"

    return _locked(path, wait, live_holder, lambda: f"{path} is held by processes of an earlier master that did not exit")


def acquire_mirror_lock(mirror_dir: Path, wait: float) -> int:
    """Lock the mirror dir for this master (see the module docstring); returns the fd to keep.

    Raises :class:`AlreadyRunning` naming the mirror dir and, if known, the other master's pid.
    """
    path = Path(mirror_dir) / MIRROR_LOCKFILE
    seen: list[int] = []

    def live_holder(fd: int) -> str | None:
        pid = _pid_in(fd)
        if pid is None:
            return None
        seen[:] = [pid]
        return f"mirror dir {mirror_dir} is in use by another master, pid {pid}" if is_master(pid) else None

    def stale() -> str:
        who = f" (pid {seen[0]})" if seen else ""
        return f"mirror dir {mirror_dir} is locked by processes of another master{who} that did not exit ({path})"

    fd = _locked(path, wait, live_holder, stale)
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    except OSError:
        pass  # a full volume: the lock still holds, a refusal just cannot name us
    return fd


def _pid_in(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode(errors="replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() and int(text) > 0 else None


def _locked(path: Path, wait: float, live_holder: Callable[[int], str | None], stale: Callable[[], str]) -> int:
    """``flock`` ``path``; refuse at once when ``live_holder(fd)`` names a live master, else retry
    until ``wait`` s passed (a dead master's workers may still be stopping), then refuse with
    ``stale()``. Returns the locked fd."""
    fd = open_lock_file(path)
    deadline = time.monotonic() + wait
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return fd
            except OSError as exc:
                if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                    raise
            message = live_holder(fd)
            if message is not None:
                raise AlreadyRunning(message)
            if time.monotonic() >= deadline:
                raise AlreadyRunning(stale())
            time.sleep(0.1)
    except BaseException:
        os.close(fd)
        raise


def write_pidfile(state_dir: Path, pid: int) -> None:
    write_atomically(Path(state_dir) / PIDFILE, f"{pid}\n", mode=PIDFILE_MODE)


def remove_pidfile(state_dir: Path, pid: int) -> None:
    if read_pid(state_dir) == pid:
        try:
            (Path(state_dir) / PIDFILE).unlink()
        except FileNotFoundError:
            pass


def detach() -> int:
    """Double fork into a new session; returns, in the daemon, the fd to report readiness on.

    The original process stays until the daemon writes ``ok`` (exit 0) or an error (printed,
    exit 1) to that fd, or dies (exit 1): an init script's ``start`` therefore fails visibly.
    """
    read_end, write_end = os.pipe()
    if os.fork() > 0:
        os.close(write_end)
        message = b""
        while chunk := os.read(read_end, 4096):
            message += chunk
        if message.startswith(b"ok"):
            os._exit(0)
        text = message.decode(errors="replace").strip() or "the daemon exited before it was ready (see the log)"
        print(f"mirror-supervisor: error: {text}", file=sys.stderr)
        os._exit(1)
    os.close(read_end)
    os.setsid()
    if os.fork() > 0:
        os._exit(0)
    os.chdir("/")
    os.umask(0o022)
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    os.close(devnull)
    return write_end


def report_ready(fd: int | None, message: str = "ok") -> None:
    if fd is None:
        return
    try:
        os.write(fd, message.encode())
    finally:
        os.close(fd)
