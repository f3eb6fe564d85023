"""Workers that record as ``--user``, not as root: ffmpeg parses whatever a camera sends.

The master may stay root (it only forks, signals and reads the database) or run as that user
entirely; either way a worker switches before its first ffmpeg, and never back. The camera
directory is made the user's first, through a descriptor opened without following links, so a
planted symlink cannot hand anything else over.
"""

from __future__ import annotations

import os
import pwd
import signal
from pathlib import Path
from typing import Any

from ..footage.index_paths import INDEX_DIR_MODE, index_dir
from ..plumbing import lifeline


def become_user(name: str | None, directory: Path, master_pid: int, log: Any) -> str | None:
    """A worker: switch this process to ``name`` for good; None when done (or nothing to do), else
    why not. Its camera directory and the segment index's directory are made the user's first."""
    return _become(name, [(directory, 0o777), (index_dir(directory.parent), INDEX_DIR_MODE)], master_pid, log,
                   signal.SIGTERM)


def become_index_user(name: str | None, mirror_dir: Path | None, master_pid: int, log: Any) -> str | None:
    """The master's segment index writer: like a worker, it writes the index and parses segments
    as ``name``, never as root; the index's directory is made the user's first (the workers do
    so too). It dies with the master by SIGKILL, as every helper does."""
    give = [(index_dir(mirror_dir), INDEX_DIR_MODE)] if mirror_dir is not None else []
    return _become(name, give, master_pid, log, signal.SIGKILL)


def _become(name: str | None, give: list[tuple[Path, int]], master_pid: int, log: Any, death: int) -> str | None:
    """Groups first (the user's own and supplementary ones), then the gid, then the uid, so nothing
    of root's is kept. The kernel clears the parent-death signal when credentials change, so it
    is asked for again.
    """
    if not name:
        return None
    try:
        user = pwd.getpwnam(name)
    except KeyError:
        return f"--user {name!r}: no such user"
    if os.geteuid() == user.pw_uid and os.getegid() == user.pw_gid:
        return None  # the whole daemon runs as that user already
    if os.geteuid() != 0:
        return (f"--user {name!r}: cannot switch user as uid {os.geteuid()} "
                "(run the master as root or as that user)")
    for directory, mode in give:
        _give_directory(directory, user, log, mode=mode)
    try:
        os.initgroups(name, user.pw_gid)
        os.setgid(user.pw_gid)
        os.setuid(user.pw_uid)
    except OSError as exc:
        return f"--user {name!r}: cannot switch to it: {exc.strerror or exc}"
    lifeline.die_with_parent(master_pid, death)
    os.environ["HOME"] = user.pw_dir
    os.environ["USER"] = os.environ["LOGNAME"] = name
    return None


def _give_directory(directory: Path, user: pwd.struct_passwd, log: Any, mode: int = 0o777) -> None:
    """Create ``<mirror_dir>/<id>`` or ``<mirror_dir>/.mirror-supervisor`` (never the mirror dir)
    and make it the user's; failures are left to the worker's own checks, which report them."""
    try:
        if directory.parent.is_dir():
            directory.mkdir(mode=mode, exist_ok=True)
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return
    try:
        info = os.fstat(fd)
        if (info.st_uid, info.st_gid) != (user.pw_uid, user.pw_gid):
            os.fchown(fd, user.pw_uid, user.pw_gid)
    except OSError as exc:
        log.warning("cannot give directory %s to user %s: %s", directory, user.pw_name, exc.strerror or exc)
    finally:
        os.close(fd)
