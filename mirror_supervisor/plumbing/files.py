"""Creating the supervisor's own files so that nobody else can read them or redirect them.

The daemon runs as root with umask 022, and its state directory may be a fallback under /tmp, where
any local user can create names first. So every file of ours is created with an explicit mode
(never world-readable: a log line or the status file can name a camera's URL), every temporary
file gets a fresh random name and ``O_CREAT|O_EXCL|O_NOFOLLOW`` (a planted file or symlink makes
the write fail instead of being followed), and a directory we rely on is checked to be ours.

Only the supervisor's own files live here; ffmpeg's segments keep the process umask, because the
NVR and its users read the mirror.
"""

from __future__ import annotations

import os
import secrets
import stat
from pathlib import Path

LOG_MODE = 0o640  # the operator's group (adm, say) may read the log; the world may not
STATUS_MODE = 0o640  # what the log says anyway; `status` must work for that same group
PIDFILE_MODE = 0o644  # a pid is no secret, and init scripts of any user read pidfiles
LOCK_MODE = 0o600  # anyone who can open a lock file can flock it, and so block our start
STATE_DIR_MODE = 0o750

_NEW = os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


def write_atomically(path: Path, text: str, mode: int = STATUS_MODE) -> None:
    """Replace ``path`` with ``text`` in one rename, so a reader sees the old or the new file.

    The temporary name is random and created exclusively without following symlinks: another
    user who can write the directory cannot make us write through a link they planted there.
    The rename replaces a symlink at ``path`` itself, never its target.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | _NEW, mode)
    try:
        try:
            os.fchmod(fd, mode)  # exactly ``mode``, whatever the umask
            write_all(fd, text.encode("utf-8"))
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        _unlink_quietly(tmp)
        raise


def write_durably(path: Path, data: bytes, mode: int) -> None:
    """Like :func:`write_atomically`, and on disk before it counts: the data is fsynced before
    the rename and the directory after it, so a power cut leaves the old file or the new one,
    never an empty or partial one (what a file read only after a crash must be)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | _NEW, mode)
    try:
        try:
            os.fchmod(fd, mode)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        replace_durably(tmp, path)
    except BaseException:
        _unlink_quietly(tmp)
        raise


def replace_durably(tmp: Path, path: Path) -> None:
    """Rename a complete, fsynced ``tmp`` over ``path`` and fsync the directory (the rename)."""
    os.replace(tmp, path)
    fd = os.open(Path(path).parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_all(fd: int, data: bytes) -> None:
    """Write all of ``data`` to ``fd`` (a pipe or a file may take it in parts)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def read_exact(fd: int, size: int) -> bytes:
    """Exactly ``size`` bytes from ``fd``; EOFError when it ends before them."""
    chunks, got = [], 0
    while got < size:
        chunk = os.read(fd, size - got)
        if not chunk:
            raise EOFError(f"closed after {got} of {size} bytes")
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def _unlink_quietly(path: Path) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def open_append(path: Path, mode: int = LOG_MODE) -> int:
    """An ``O_APPEND`` fd on a log file, created with ``mode`` if it is new; never via a symlink.

    The umask can only take bits away, so a new file is never more open than ``mode``; an
    existing file keeps the mode it has (the operator's or logrotate's ``create`` choice).
    """
    return os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, mode)


def open_lock_file(path: Path) -> int:
    """An fd to ``flock`` on (read-write, so the holder can write its pid into it)."""
    return os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, LOCK_MODE)


class UnsafeDirectory(Exception):
    """The directory exists but another user could change what is in it; the message says why."""


def ensure_private_dir(path: Path, mode: int = STATE_DIR_MODE) -> None:
    """Create ``path`` with ``mode`` or accept an existing one that only we can change.

    Refuses (:class:`UnsafeDirectory`) a symlink, a non-directory, a directory owned by another
    user, or one that group or others may write: anyone who could write it could plant or swap
    our pidfile and lock, or pre-create a /tmp fallback to do so. An existing directory's read
    bits are left as the operator set them.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        os.mkdir(path, mode)
    except FileExistsError:
        pass
    else:
        os.chmod(path, mode, follow_symlinks=False)  # exactly ``mode``, whatever the umask
    check_private_dir(path)


def check_private_dir(path: Path) -> None:
    """Raise :class:`UnsafeDirectory` unless ``path`` is a real directory only we can write."""
    info = os.lstat(path)
    if stat.S_ISLNK(info.st_mode):
        raise UnsafeDirectory("is a symlink")
    if not stat.S_ISDIR(info.st_mode):
        raise UnsafeDirectory("is not a directory")
    if info.st_uid != os.geteuid():
        raise UnsafeDirectory(f"is owned by uid {info.st_uid}, not by us (uid {os.geteuid()})")
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise UnsafeDirectory(f"is writable by group or others (mode {stat.S_IMODE(info.st_mode):04o})")
