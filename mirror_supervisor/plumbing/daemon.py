"""Being a well-behaved daemon: a lock, a pidfile, detaching, and finding the running master.

The lock (``flock`` on ``<state_dir>/mirror-supervisor.lock``) is what really prevents two
masters: it is held by the master *and inherited by its workers*, so while any worker of an old
master is still stopping its ffmpeg, a new master cannot start a second ffmpeg for the same
camera. The pidfile is only a pointer for ``reload``/``stop``/``status`` and init scripts; it is
written atomically once the master is ready and removed on exit only if it still names us.

The state-dir lock alone lets two masters with *different* state dirs record into one mirror dir
(two ffmpegs per camera fighting over segment names). So the master also claims the mirror dir:
it binds an abstract Unix socket named after the directory's device and inode, which its
workers inherit like the lock, so a dead master's stopping workers keep the claim until they
are gone. A second master finds the holders through /proc to name them. No
file is kept open on the mirror volume: closing one there (a lock file) blocks in the kernel
for as long as a network or FUSE volume hangs, which would make ``stop`` hang too. The claim is
per network namespace: masters in different containers do not see each other's.
"""

from __future__ import annotations

import errno
import fcntl
import os
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path

import psutil

from . import titles
from .files import PIDFILE_MODE, open_lock_file, write_atomically

PIDFILE = "mirror-supervisor.pid"
LOCKFILE = "mirror-supervisor.lock"


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
        return titles.is_master(" ".join(proc.cmdline()))
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
    """Claim the mirror dir for this master (see the module docstring); returns the fd to keep.

    Raises :class:`AlreadyRunning` naming the mirror dir and, if known, the other master's pid.
    """
    name = mirror_lock_name(os.stat(mirror_dir))
    deadline = time.monotonic() + wait
    while True:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        try:
            sock.bind(name)
            return sock.detach()
        except OSError as exc:
            sock.close()
            if exc.errno != errno.EADDRINUSE:
                raise
        holders = claim_holders(name)
        masters = [pid for pid in holders if is_master(pid)]
        if masters:
            raise AlreadyRunning(f"mirror dir {mirror_dir} is in use by another master, pid {masters[0]}")
        if time.monotonic() >= deadline:
            who = f" (pids {', '.join(map(str, holders))})" if holders else ""
            raise AlreadyRunning(f"mirror dir {mirror_dir} is claimed by processes of another master{who} "
                                 "that did not exit")
        time.sleep(0.2)


def mirror_lock_name(st: os.stat_result) -> bytes:
    """An abstract socket name for one directory: its device and inode, not its path, so two
    paths to one directory (a bind mount, a symlink) claim the same name."""
    return f"\0mirror-supervisor/mirror/{st.st_dev}/{st.st_ino}".encode()


def claim_holders(name: bytes) -> list[int]:
    """Pids holding the socket bound to ``name``, found through /proc (never by connecting:
    nothing ever answers on the claim, and nothing here may block)."""
    shown = "@" + name[1:].decode()
    inodes = set()
    try:
        with open("/proc/net/unix", encoding="utf-8", errors="replace") as table:
            for line in table:
                fields = line.split()
                if len(fields) >= 8 and fields[7] == shown:
                    inodes.add(f"socket:[{fields[6]}]")
    except OSError:
        return []
    holders = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if any(os.readlink(f"/proc/{entry}/fd/{fd}") in inodes for fd in os.listdir(f"/proc/{entry}/fd")):
                holders.append(int(entry))
        except OSError:
            continue
    return sorted(holders)


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
