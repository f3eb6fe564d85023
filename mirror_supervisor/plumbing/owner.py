"""Using files in a directory another user owns: with that user's rights, never with root's.

The segment index lives in ``<mirror_dir>/.mirror-supervisor``, which belongs to the ``--user``
account (its workers write it), and root uses it too: the master's coverage child, the pruner,
``coverage`` run by the operator. Whoever owns a directory can replace any name in it at any
instant, with a symlink or a hard link to a file elsewhere, and whoever owns the directory above
can replace the directory itself. A check followed by an open by name can always be raced, and
SQLite opens the database, its ``-wal``, ``-shm`` and journal by name, whenever it needs them
(with ``O_NOFOLLOW`` on the last component only). Root would then change whatever file the name
leads to: switch another database to WAL, create a table in it, drop one.

So root does not use such a directory as root. For the length of each use it takes the owner's
file-system identity (effective uid and gid, no supplementary groups; :func:`acting_as`) and
gives it back afterwards. Whatever a swapped name leads to is then opened with exactly the rights
of the user who could swap it: nothing that user could not do already. The real and saved uid
stay 0, so root can switch back; meanwhile the owner can neither signal the process nor ptrace
it or read its memory (the kernel checks those against the real and saved uid as well).

The identity is read from descriptors opened without following links (:func:`owner_of`), and it
is only the right one if nobody else can swap the directory: root refuses (:class:`Unsafe`) when
the directory above belongs to a third user or is writable by group or others (unless sticky),
and when the directory itself is writable by group or others. The effective ids apply to every
thread of a process, so root refuses to switch while other threads run: one of them could fork
or write something meanwhile.
"""

from __future__ import annotations

import contextlib
import os
import stat
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from . import lifeline

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
_OTHERS_WRITE = stat.S_IWGRP | stat.S_IWOTH


@dataclass(frozen=True)
class Identity:
    """Whose rights a directory is used with: its owner's uid and gid."""

    uid: int
    gid: int


class Unsafe(Exception):
    """Root cannot use the directory safely: someone besides its owner could swap it or its names."""


def owner_of(parent: Path, name: str) -> Identity:
    """The owner of the directory ``parent/name``; ``name`` is never followed if it is a link.

    Raises ``FileNotFoundError`` when it is missing, ``OSError`` (``ELOOP``, ``ENOTDIR``) when a
    symlink or a file is in its place, and, for root only, :class:`Unsafe` (see the module text).
    """
    parent_fd = os.open(parent, _DIR_FLAGS)
    try:
        fd = os.open(name, _DIR_FLAGS | os.O_NOFOLLOW, dir_fd=parent_fd)
        try:
            inner = os.fstat(fd)
        finally:
            os.close(fd)
        outer = os.fstat(parent_fd)
    finally:
        os.close(parent_fd)
    if os.geteuid() == 0:
        _check_swappers(parent, outer, name, inner)
    return Identity(inner.st_uid, inner.st_gid)


def _check_swappers(parent: Path, outer: os.stat_result, name: str, inner: os.stat_result) -> None:
    """Raise :class:`Unsafe` unless only root and the owner of ``name`` can replace it or its names."""
    if outer.st_uid not in (0, inner.st_uid):
        raise Unsafe(f"{parent} belongs to uid {outer.st_uid}, who could swap {name} (owned by uid {inner.st_uid})")
    if _writable_by_others(outer):
        raise Unsafe(f"{parent} is writable by group or others (mode {stat.S_IMODE(outer.st_mode):04o}), "
                     f"who could swap {name}")
    if _writable_by_others(inner):
        raise Unsafe(f"{Path(parent) / name} is writable by group or others "
                     f"(mode {stat.S_IMODE(inner.st_mode):04o})")


def _writable_by_others(info: os.stat_result) -> bool:
    """Group or others may rename entries: writable by them, and not sticky."""
    return bool(info.st_mode & _OTHERS_WRITE) and not info.st_mode & stat.S_ISVTX


def switches(who: Identity) -> bool:
    """Does using a directory of ``who`` take a switch of identity (root, and ``who`` is not root)?"""
    return os.geteuid() == 0 and who.uid != 0


def acting_as(who: Identity) -> contextlib.AbstractContextManager[None]:
    """Within the block, files are opened with ``who``'s rights when we are root; else a no-op.
    Raises :class:`Unsafe` at once, before the block, while other threads run."""
    if not switches(who):
        return contextlib.nullcontext()
    if threads() > 1:
        raise Unsafe(f"cannot act as uid {who.uid} while other threads run")
    return _switched(who)


def threads() -> int:
    """Threads of this process as the kernel counts them: also those ``threading`` never saw
    (a ``_thread`` reader, a C library's)."""
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        return max(threading.active_count(), 2)  # cannot tell: assume the worst


@contextlib.contextmanager
def _switched(who: Identity) -> Iterator[None]:
    """Supplementary groups first (root's may open what the owner's group cannot), then the gid,
    then the uid; given back in the reverse order (the uid first: only a euid of 0 may change the
    others). A failure to switch back leaves the process with the owner's rights, never more.

    The kernel clears the parent-death signal at a change of effective ids: a helper of the master
    (the pruner, the coverage child) would outlive it. It is asked for again once root is back,
    and delivered at once if the parent died meanwhile."""
    death, parent = lifeline.parent_death_signal(), os.getppid()
    groups, egid = os.getgroups(), os.getegid()
    os.setgroups([])
    try:
        os.setegid(who.gid)
        try:
            os.seteuid(who.uid)
            try:
                yield
            finally:
                os.seteuid(0)
        finally:
            os.setegid(egid)
    finally:
        os.setgroups(groups)
        if death:
            lifeline.die_with_parent(parent, death)
