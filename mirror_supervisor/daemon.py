"""Being a well-behaved daemon: a lock, a pidfile, detaching, and finding the running master.

The lock (``flock`` on ``<state_dir>/mirror-supervisor.lock``) is what really prevents two
masters: it is held by the master *and inherited by its workers*, so while any worker of an old
master is still stopping its ffmpeg, a new master cannot start a second ffmpeg for the same
camera. The pidfile is only a pointer for ``reload``/``stop``/``status`` and init scripts; it is
written atomically once the master is ready and removed on exit only if it still names us.
"""

from __future__ import annotations

import errno
import fcntl
import os
import sys
import time
from pathlib import Path

import psutil

from .status import write_atomically

PIDFILE = "mirror-supervisor.pid"
LOCKFILE = "mirror-supervisor.lock"
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
    fd = os.open(Path(state_dir) / LOCKFILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    deadline = time.monotonic() + wait
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd
        except OSError as exc:
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                os.close(fd)
                raise
        pid = running_master(state_dir)
        if pid is not None:
            os.close(fd)
            raise AlreadyRunning(f"already running as pid {pid} (pidfile {Path(state_dir) / PIDFILE})")
        if time.monotonic() >= deadline:
            os.close(fd)
            raise AlreadyRunning(f"{Path(state_dir) / LOCKFILE} is held by processes of an earlier master that did not exit")
        time.sleep(0.1)


def write_pidfile(state_dir: Path, pid: int) -> None:
    write_atomically(Path(state_dir) / PIDFILE, f"{pid}\n")


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
