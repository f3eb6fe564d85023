"""Orphaned directories: directories in the mirror whose camera is not in the database.

Their camera's retention is unknowable, so the pass never prunes them; it measures them (files and
bytes directly inside) so that ``prune``, ``check`` and the pruner's log can say how much space
they hold. "Orphan" means only this in the project; ffmpegs left behind by an earlier master are
*leftover ffmpegs* (:mod:`recorders`).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass

from ..cameras.camera import is_safe_id

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC | os.O_NOFOLLOW


@dataclass
class OrphanDir:
    """A directory in the mirror whose camera is not in the database: reported, never pruned."""

    name: str
    files: int = 0
    bytes: int = 0
    error: str | None = None


def orphaned_dirs(mirror_fd: int, known: Iterable[str]) -> list[OrphanDir]:
    """Directories that could be a camera's (safe names) but whose camera is not in the database.

    Names that no camera id could have (``lost+found`` at a volume root, hidden directories) are
    not camera directories and not reported.
    """
    known = set(known)
    orphans = []
    with os.scandir(mirror_fd) as entries:
        for entry in entries:
            if entry.name in known or not is_safe_id(entry.name):
                continue
            try:
                if not entry.is_dir(follow_symlinks=False):
                    continue
            except OSError:
                continue
            orphans.append(_measure(mirror_fd, entry.name))
    orphans.sort(key=lambda o: o.name)
    return orphans


def _measure(mirror_fd: int, name: str) -> OrphanDir:
    orphan = OrphanDir(name)
    try:
        dir_fd = os.open(name, _DIR_FLAGS, dir_fd=mirror_fd)
    except OSError as exc:
        orphan.error = exc.strerror or str(exc)
        return orphan
    try:
        with os.scandir(dir_fd) as entries:
            for entry in entries:
                try:
                    if entry.is_file(follow_symlinks=False):
                        orphan.bytes += entry.stat(follow_symlinks=False).st_size
                        orphan.files += 1
                except OSError:
                    continue
    except OSError as exc:
        orphan.error = exc.strerror or str(exc)
    finally:
        os.close(dir_fd)
    return orphan
