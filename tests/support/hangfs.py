"""A real FUSE file system for tests: a passthrough of a backing directory that can HANG.

A mirror volume on NFS or SMB with a hard mount does not fail when its server goes away: every
system call that touches it simply never returns. Faking that in Python (a mock that sleeps)
would prove nothing about where the real processes block, so this module mounts a real FUSE file
system, served by a separate process, in front of an ordinary directory. ffmpeg, the workers,
the master and the CLI all see a real mount point; the test decides when it stops answering.

Two ways to hang it, because the kernel treats them differently:

- ``"stop"``: SIGSTOP the serving process. New requests stay queued in the kernel, unread. A
  caller waits interruptibly, and after any signal killably (state D): SIGKILL still ends it.
  That is how an NFS hard mount behaves (its waits are killable).
- ``"block"``: the serving process reads each request and then blocks in it until resumed. A
  caller whose request was read waits uninterruptibly: not even SIGKILL ends it until the
  server answers or the connection is aborted. The worst case a supervisor can meet.
- ``"block-segment-reads"``: the same, for the opening and reading of ``.mp4`` files only;
  listings, stats and every other file still answer. A test that must catch a process in the
  middle of reading segments sets it before that process starts, instead of racing it.

``resume()`` answers everything that waited, in either mode. Run as a script, this file is the
server: ``python hangfs.py BACKING MOUNTPOINT CONTROL_FILE PARENT_PID`` (block mode hangs
while CONTROL_FILE exists, within the scope it names; it dies with PARENT_PID). The test side is :class:`HangFs`.
"""

from __future__ import annotations

import contextlib
import errno
import importlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

FSNAME = "hangfs"
MOUNTINFO = Path("/proc/self/mountinfo")
CONNECTIONS = Path("/sys/fs/fuse/connections")
BLOCK_POLL_SECONDS = 0.05
STAT_FIELDS = ("st_mode", "st_ino", "st_dev", "st_nlink", "st_uid", "st_gid", "st_size",
               "st_atime_ns", "st_mtime_ns", "st_ctime_ns", "st_blocks", "st_blksize")


# -- the test side ----------------------------------------------------------------------------

def unavailable_reason() -> str | None:
    """Why a FUSE mount cannot be made here, or None: the tests skip with this text."""
    if not Path("/dev/fuse").exists():
        return "no /dev/fuse (FUSE kernel module not available)"
    if os.geteuid() != 0:
        return "mounting FUSE with mount(2) and aborting connections needs root"
    try:
        importlib.import_module("mfusepy")  # loads libfuse through ctypes: fails without it
    except (ImportError, OSError) as exc:
        return f"mfusepy or libfuse is not installed (scripts/setup.sh installs them): {exc}"
    return None


def mount_entry(mountpoint: Path) -> list[str] | None:
    """The mountinfo fields of the topmost mount at ``mountpoint``, read from /proc, never by
    touching the path (a stat of a hung mount point would hang the test itself)."""
    found = None
    target = os.path.realpath(os.path.dirname(mountpoint)) + "/" + os.path.basename(mountpoint)
    for line in MOUNTINFO.read_text().splitlines():
        fields = line.split()
        if len(fields) > 4 and _unescape(fields[4]) == target:
            found = fields
    return found


def _unescape(field: str) -> str:
    """mountinfo writes space, tab, newline and backslash as octal escapes."""
    return field.encode().decode("unicode_escape") if "\\" in field else field


@contextlib.contextmanager
def hanging_volume(workdir: Path, name: str) -> Iterator[HangFs]:
    """The fixtures' way in: a mount at ``workdir/name`` over ``workdir/name-backing``, unmounted
    at the end even if the test left it hung."""
    fs = HangFs(workdir / f"{name}-backing", workdir / name, workdir).mount()
    try:
        yield fs
    finally:
        fs.unmount()


class HangFs:
    """One mount of the hanging passthrough, served by a child process of the test."""

    def __init__(self, backing: Path, mountpoint: Path, workdir: Path) -> None:
        self.backing = backing
        self.mountpoint = mountpoint
        self.control = workdir / "hangfs.block"  # block mode hangs while this file exists
        self.log_path = workdir / "hangfs.log"
        self.proc: subprocess.Popen | None = None
        self.mode: str | None = None

    def mount(self, timeout: float = 15.0) -> HangFs:
        self.backing.mkdir(parents=True, exist_ok=True)
        self.mountpoint.mkdir(parents=True, exist_ok=True)
        self.control.unlink(missing_ok=True)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, __file__, str(self.backing), str(self.mountpoint), str(self.control),
                 str(os.getpid())],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while mount_entry(self.mountpoint) is None:
            if self.proc.poll() is not None or time.monotonic() >= deadline:
                raise RuntimeError(f"hangfs did not mount {self.mountpoint}: {self.log_path.read_text()[-2000:]}")
            time.sleep(0.05)
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def hang(self, mode: str = "stop") -> None:
        """From now on every request to the mount goes unanswered (see the module docstring)."""
        if mode == "stop":
            os.kill(self.pid, signal.SIGSTOP)
        elif mode in ("block", "block-segment-reads"):
            # replaced, not rewritten in place: the server never reads half a scope
            scratch = self.control.with_suffix(".new")
            scratch.write_text("segment-reads" if mode == "block-segment-reads" else "")
            scratch.replace(self.control)
        else:
            raise ValueError(f"unknown hang mode {mode!r}")
        self.mode = mode

    def resume(self) -> None:
        """Answer everything that waited, and every request from now on."""
        self.control.unlink(missing_ok=True)
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.pid, signal.SIGCONT)
        self.mode = None

    def connection(self) -> Path | None:
        """This mount's directory in the fusectl file system (its name is the device minor)."""
        entry = mount_entry(self.mountpoint)
        if entry is None:
            return None
        _ensure_fusectl()
        path = CONNECTIONS / entry[2].split(":")[1]
        return path if path.exists() else None

    def abort(self) -> bool:
        """Fail every waiting and future request with ENOTCONN: the last resort when resuming
        cannot help (the server died) and a process would otherwise stay in D state forever."""
        path = self.connection()
        if path is None:
            return False
        try:
            (path / "abort").write_text("1")
        except OSError:
            return False
        return True

    def unmount(self) -> None:
        """Teardown that works even while hung: resume, detach lazily, end the server; abort the
        connection only if something still holds on."""
        if self.proc is None:
            return
        self.resume()
        if mount_entry(self.mountpoint) is not None:
            if not _lazy_unmount(self.mountpoint):
                self.abort()
                _lazy_unmount(self.mountpoint)
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.abort()
            self.proc.kill()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        self.proc = None


def _lazy_unmount(mountpoint: Path) -> bool:
    """umount2(MNT_DETACH) through the tools; both may stat the path, so call this resumed."""
    for argv in (["umount", "-l", str(mountpoint)], ["fusermount3", "-u", "-z", str(mountpoint)]):
        try:
            subprocess.run(argv, capture_output=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            continue
        if mount_entry(mountpoint) is None:
            return True
    return False


def _ensure_fusectl() -> None:
    """The fusectl file system is what exposes ``abort``; containers often do not mount it."""
    if CONNECTIONS.is_dir() and not any(CONNECTIONS.iterdir()):
        subprocess.run(["mount", "-t", "fusectl", "fusectl", str(CONNECTIONS)], capture_output=True, timeout=10)


# -- the server side --------------------------------------------------------------------------

def _operations_class() -> type:
    """Built on demand: importing mfusepy loads libfuse, which the test side must not need."""
    from mfusepy import FuseOSError, Operations

    def errors(method):
        """Pass an OSError from the backing directory through as its errno."""
        def wrapper(self, *args):
            self.wait_while_blocked(method.__name__, args[0] if args else "")
            try:
                return method(self, *args)
            except OSError as exc:
                raise FuseOSError(exc.errno or errno.EIO) from None
        wrapper.__name__ = method.__name__
        return wrapper

    class Passthrough(Operations):
        """Every operation on ``/x`` is done on ``<backing>/x``; file handles are real fds."""

        use_ns = True

        def __init__(self, backing: str, control: str) -> None:
            self.backing = backing
            self.control = control

        def wait_while_blocked(self, operation: str, path: str) -> None:
            """Block mode: hold the request (the caller is in D state) while the file exists and
            its scope covers the request: empty, every request; ``segment-reads``, the opening
            and reading of an ``.mp4`` file only."""
            while True:
                try:
                    with open(self.control) as control:
                        scope = control.read().strip()
                except FileNotFoundError:
                    return
                if scope and not (scope == "segment-reads" and operation in ("open", "read")
                                  and path.endswith(".mp4")):
                    return
                time.sleep(BLOCK_POLL_SECONDS)

        def real(self, path: str) -> str:
            return os.path.join(self.backing, path.lstrip("/"))

        @errors
        def getattr(self, path: str, fh: int | None = None) -> dict[str, Any]:
            st = os.fstat(fh) if fh is not None else os.lstat(self.real(path))
            attrs = {name.replace("_ns", ""): getattr(st, name) for name in STAT_FIELDS}
            return attrs

        @errors
        def readdir(self, path: str, fh: int) -> list[str]:
            return [".", "..", *os.listdir(self.real(path))]

        @errors
        def access(self, path: str, amode: int) -> int:
            if not os.access(self.real(path), amode):
                raise FuseOSError(errno.EACCES)
            return 0

        @errors
        def mkdir(self, path: str, mode: int) -> int:
            os.mkdir(self.real(path), mode)
            return 0

        @errors
        def rmdir(self, path: str) -> int:
            os.rmdir(self.real(path))
            return 0

        @errors
        def create(self, path: str, mode: int, flags: int) -> int:
            return os.open(self.real(path), flags | os.O_CREAT, mode)

        @errors
        def open(self, path: str, flags: int) -> int:
            return os.open(self.real(path), flags)

        @errors
        def read(self, path: str, size: int, offset: int, fh: int) -> bytes:
            return os.pread(fh, size, offset)

        @errors
        def write(self, path: str, data: bytes, offset: int, fh: int) -> int:
            return os.pwrite(fh, data, offset)

        @errors
        def truncate(self, path: str, length: int, fh: int | None = None) -> int:
            if fh is not None:
                os.ftruncate(fh, length)
            else:
                os.truncate(self.real(path), length)
            return 0

        @errors
        def flush(self, path: str, fh: int) -> int:
            return 0

        @errors
        def release(self, path: str, fh: int) -> int:
            os.close(fh)
            return 0

        @errors
        def fsync(self, path: str, datasync: int, fh: int) -> int:
            (os.fdatasync if datasync else os.fsync)(fh)
            return 0

        @errors
        def unlink(self, path: str) -> int:
            os.unlink(self.real(path))
            return 0

        @errors
        def rename(self, old: str, new: str) -> int:
            os.rename(self.real(old), self.real(new))
            return 0

        @errors
        def utimens(self, path: str, times: tuple[int, int] | None = None) -> int:
            os.utime(self.real(path), ns=times, follow_symlinks=False)
            return 0

        @errors
        def chmod(self, path: str, mode: int) -> int:
            os.chmod(self.real(path), mode)
            return 0

        @errors
        def chown(self, path: str, uid: int, gid: int) -> int:
            os.lchown(self.real(path), uid, gid)
            return 0

        @errors
        def statfs(self, path: str) -> dict[str, int]:
            st = os.statvfs(self.real(path))
            return {name: getattr(st, name) for name in ("f_bsize", "f_frsize", "f_blocks", "f_bfree", "f_bavail",
                                                           "f_files", "f_ffree", "f_favail", "f_flag", "f_namemax")}

    return Passthrough


def die_with_parent(parent: int) -> None:
    """If the test process dies (killed by a timeout, say) while the volume hangs, the server
    must not stay stopped: a hung mount left behind would hang whoever walks the temporary
    directory next (pytest's own clean-up of old tmp dirs). SIGKILL ends even a stopped server;
    the kernel then fails every request on the mount with ENOTCONN instead of waiting."""
    import ctypes

    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:
        os.kill(os.getpid(), signal.SIGKILL)


def serve(backing: str, mountpoint: str, control: str, parent: int) -> None:
    """Mount and serve until unmounted; multi-threaded, so one blocked request is not all."""
    from mfusepy import FUSE

    die_with_parent(parent)
    FUSE(_operations_class()(os.path.realpath(backing), control), mountpoint, foreground=True,
         nothreads=False, fsname=FSNAME, subtype=FSNAME)


if __name__ == "__main__":
    serve(*sys.argv[1:4], parent=int(sys.argv[4]))
