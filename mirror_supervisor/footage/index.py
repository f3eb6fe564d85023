"""The segment index: one row per complete segment, kept as recording happens.

A cache, never a source of truth. It lives next to the footage it describes, in
``<mirror_dir>/.mirror-supervisor/index.sqlite3`` (plus SQLite's ``-wal`` and ``-shm``), so it
survives reboots with the files and never names another volume's. The directory is the workers'
user's: with ``--user`` the mirror dir may stay root's, so a worker (and the index writer), before
it gives up root, creates ``.mirror-supervisor`` and gives it to that user (:mod:`privileges`), as
a worker does its camera directory. Only they create the directory; anyone else (``coverage``,
``status``, the pruner) writes into it only when it exists. Root uses it with the owner's rights only (:mod:`owner`):
the owner can swap any name in it at any instant, and SQLite opens the database, ``-wal``,
``-shm`` and journals by name whenever it likes, so a check before the open could always be
raced; with the owner's rights a swapped name leads to nothing the owner could not change anyway,
and every file root makes there is the workers'. Another user (the operator's account in the
workers' group) only reads it, ``immutable`` when SQLite cannot make its ``-shm`` there. It can be
deleted at any time: ``coverage`` re-reads any segment whose row is missing or whose size or
mtime differ from the file's (:mod:`coverage`), and fills the row in. The pruner never reads it;
it only removes the rows of the files it deleted. It is not the NVR's database and never touches it.

Writers: one child of the master, the index writer (:mod:`index_writer`), writes the rows of every
camera's complete segments, which the workers name on their report pipe: the file's boxes are
parsed (:mod:`mp4`, a few small reads), then one short transaction per camera and batch. The
coverage child, ``coverage`` and the pruner write too, so the database is in WAL mode (readers
never block writers) with a short busy timeout, ``synchronous=NORMAL`` (no fsync per commit; a
crash can lose the last rows, which are rebuilt from the files), and no connection is held between
batches (nothing stays open on the mirror volume). A write that fails is logged once and recording
goes on: the index must never stop footage. No worker imports this module (its place, for
``--user``, is in :mod:`index_paths`).

Schema (``user_version`` 1)::

    segments(root, camera, name, start, duration, size, mtime_ns, playable, problem)
    primary key (root, camera, name)

``root`` is ``''`` for the mirror; ``coverage --primary-dir`` caches the NVR's own segments
under the primary directory's absolute path. ``start`` is the UTC second in the name;
``duration`` the playable seconds (0 when not playable); ``problem`` why not.
"""

from __future__ import annotations

import contextlib
import errno
import os
import sqlite3
import time
import urllib.parse
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, NamedTuple

from ..plumbing import owner
from ..plumbing.files import STATUS_MODE
from . import mp4
from .index_paths import INDEX_DIR as INDEX_DIR  # the place, also for those who import it from here
from .index_paths import INDEX_DIR_MODE as INDEX_DIR_MODE
from .index_paths import INDEX_NAME as INDEX_NAME
from .index_paths import index_dir as index_dir
from .index_paths import index_path as index_path
from .segments import SEGMENT_OR_MOVED, name_epoch

INDEX_MODE = STATUS_MODE  # 0640: like the status file (the group that runs `status` may read it)
BUSY_TIMEOUT_MS = 2000  # one row per segment per camera: waits are short even with hundreds
SCHEMA_VERSION = 1
MIRROR = ""  # the ``root`` of the mirror's own rows

_SCHEMA = """
CREATE TABLE IF NOT EXISTS segments (
    root TEXT NOT NULL,
    camera TEXT NOT NULL,
    name TEXT NOT NULL,
    start REAL NOT NULL,
    duration REAL NOT NULL,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    playable INTEGER NOT NULL,
    problem TEXT,
    PRIMARY KEY (root, camera, name)
) WITHOUT ROWID
"""


class Row(NamedTuple):
    """One segment as parsing its file said; what :mod:`timing` judges a span from. A named tuple,
    not a dataclass: a day of a hundred cameras is 144,000 rows read at once (the status page's
    first read), and building a frozen dataclass cost about twice as much per row."""

    name: str
    start: float
    duration: float  # playable seconds: 0 when not playable
    size: int
    mtime_ns: int
    playable: bool
    problem: str | None


class IndexError_(Exception):
    """The index cannot be opened or written (the caller decides whether that matters)."""


def start_of(name: str) -> float | None:
    """The UTC start second in a segment name (ffmpeg's or a moved-aside ``~N`` one), or None."""
    match = SEGMENT_OR_MOVED.fullmatch(name)
    return None if match is None else name_epoch(match.group(1), match.group(2))


def row_from(name: str, info: mp4.SegmentInfo) -> Row | None:
    start = start_of(name)
    if start is None:
        return None
    return Row(name, start, info.duration if info.playable else 0.0, info.size, info.mtime_ns, info.playable,
               info.problem)


def _create(path: Path) -> None:
    """Create the database file with exactly ``INDEX_MODE`` (never through a symlink), so SQLite's
    ``-wal`` and ``-shm``, which copy the main file's mode, are no more open either. Called with
    the directory owner's rights (:mod:`owner`), so a new file is the workers' whoever made it."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, INDEX_MODE)
    except FileExistsError:
        return
    try:
        os.fchmod(fd, INDEX_MODE)
    finally:
        os.close(fd)


def make_index_dir(mirror_dir: Path) -> Path:
    """``<mirror_dir>/.mirror-supervisor``, created when missing (workers only); a symlink or a
    file in its place is refused."""
    directory = index_dir(mirror_dir)
    try:
        directory.mkdir(mode=INDEX_DIR_MODE)
    except FileExistsError:
        pass
    if directory.is_symlink() or not directory.is_dir():
        raise IndexError_(f"{directory} is not a directory; not using it")
    return directory


def index_owner(mirror_dir: Path, write: bool) -> owner.Identity:
    """Whose rights the index is used with: its directory's owner (:mod:`owner`). Root takes them
    for each use; another user only reads a directory that is not its own."""
    directory = index_dir(mirror_dir)
    try:
        who = owner.owner_of(Path(mirror_dir), INDEX_DIR)
    except FileNotFoundError:
        raise IndexError_(f"no segment index yet in {mirror_dir} (the workers create it)") from None
    except owner.Unsafe as exc:
        raise IndexError_(f"not using the segment index: {exc}") from None
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            raise IndexError_(f"{directory} is not a directory (a symlink?); not using it") from None
        raise
    if write and os.geteuid() not in (0, who.uid):
        raise IndexError_(f"{directory} belongs to uid {who.uid}: uid {os.geteuid()} only reads it")
    return who


def _uri(path: Path, mode: str) -> str:
    """SQLite's URI for ``path`` (quoted: a ``?`` or ``#`` in the mirror dir's name is no parameter).
    No ``nofollow``: SQLite 3.40 ignores that as a URI parameter (it is an open flag, which
    Python's ``sqlite3`` cannot pass), and it would only be a check before the open anyway."""
    return f"file:{urllib.parse.quote(str(path))}?mode={mode}"


def _open(uri: str) -> sqlite3.Connection:
    db = sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None,
                         check_same_thread=False)
    db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    return db


def _readable(db: sqlite3.Connection, path: Path) -> sqlite3.Connection:
    """``db`` (read-only) once it has read the schema, else the file opened ``immutable``.

    A reader who may not write the directory (the operator's account in the workers' group)
    cannot create ``-shm``, and a WAL database cannot be read without it; between segments no
    worker holds a connection, and the last one to close removed ``-wal`` and ``-shm``, so a plain
    read-only open fails then. Everything is in the main file at that point; ``immutable`` reads
    it without the shared memory and without locks. A worker may write meanwhile: that reader
    then misses the newest rows (their files are parsed) or, if a checkpoint overlaps its read, gets an
    error (every file is parsed); rows are used only while size and mtime match the file's.
    """
    try:
        db.execute("PRAGMA schema_version").fetchone()
        return db
    except sqlite3.OperationalError as exc:
        if exc.sqlite_errorcode & 0xFF not in (sqlite3.SQLITE_READONLY, sqlite3.SQLITE_CANTOPEN):
            raise
    db.close()
    return _open(_uri(path, "ro") + "&immutable=1")


class SegmentIndex:
    """One open connection to the index; use as a context manager, keep it short.

    Every call that may open a file (connect, each statement, close: SQLite opens and removes
    ``-wal``, ``-shm`` and journals whenever it needs them) runs with the index directory owner's
    rights (:func:`owner.acting_as`), so root is never steered into another file.
    """

    def __init__(self, mirror_dir: Path, write: bool = True, make_dir: bool = False) -> None:
        path = index_path(mirror_dir)
        self.writable = write
        try:
            if write and make_dir:
                make_index_dir(mirror_dir)
            self._owner = index_owner(mirror_dir, write)
            with self._acting():
                self._db = self._connect(path)
        except sqlite3.Error as exc:
            raise IndexError_(f"segment index {path}: {exc}") from None
        except OSError as exc:
            raise IndexError_(f"segment index {path}: {exc.strerror or exc}") from None

    def _acting(self) -> contextlib.AbstractContextManager[None]:
        """The owner's rights for one use; refused (``IndexError_``) where they cannot be taken safely."""
        try:
            return owner.acting_as(self._owner)
        except owner.Unsafe as exc:
            raise IndexError_(f"not using the segment index: {exc}") from None

    def _connect(self, path: Path) -> sqlite3.Connection:
        """A link planted in the index's place is refused here; one swapped in after this check
        is followed with the owner's rights only (see the class text)."""
        if os.path.islink(path):
            raise IndexError_(f"{path} is a symlink; not using it")
        if self.writable:
            _create(path)
        db = _open(_uri(path, "rw" if self.writable else "ro"))
        try:
            if self.writable:
                self._db = db
                self._prepare()
            else:
                db = _readable(db, path)
        except BaseException:
            db.close()
            raise
        return db

    def _prepare(self) -> None:
        if self._version() == SCHEMA_VERSION:
            return
        self._use_wal()
        with self._transaction():  # two workers may both find a new file: one lays it out
            version = self._version()
            if version == SCHEMA_VERSION:
                return
            if version != 0:  # an index of another layout: a cache, so start afresh
                self._db.execute("DROP TABLE IF EXISTS segments")
            self._db.execute(_SCHEMA)
            self._db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def _version(self) -> int:
        return int(self._db.execute("PRAGMA user_version").fetchone()[0])

    def _use_wal(self) -> None:
        """Switch a new file to WAL (sticky: once per file). SQLite answers ``database is locked``
        at once, without its busy handler, while another connection has the file open, which is
        exactly when every worker opens a new index together; so wait here as the busy timeout
        would, in short naps, until the switch is made or someone else has made it."""
        deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
        nap = 0.002
        while True:
            try:
                self._db.execute("PRAGMA journal_mode = WAL").fetchone()
                return  # a volume without shared memory keeps its rollback journal: still correct
            except sqlite3.OperationalError as exc:
                if exc.sqlite_errorcode & 0xFF != sqlite3.SQLITE_BUSY or time.monotonic() + nap > deadline:
                    raise
                time.sleep(nap)
                nap = min(nap * 2, 0.05)

    def __enter__(self) -> SegmentIndex:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Closing may checkpoint and remove ``-wal`` and ``-shm``: with the owner's rights too."""
        with self._acting():
            self._db.close()

    def put(self, camera: str, rows: Iterable[Row], root: str = MIRROR) -> None:
        """Insert or replace rows, all in one transaction."""
        data = [(root, camera, r.name, r.start, r.duration, r.size, r.mtime_ns, int(r.playable), r.problem)
                for r in rows]
        if not data:
            return
        try:
            with self._acting():
                self._db.execute("PRAGMA synchronous = NORMAL")
                with self._transaction():
                    self._db.executemany("INSERT OR REPLACE INTO segments VALUES (?,?,?,?,?,?,?,?,?)", data)
        except sqlite3.Error as exc:
            raise IndexError_(f"cannot write the segment index: {exc}") from None

    def forget(self, names: Mapping[str, Iterable[str]], root: str = MIRROR) -> None:
        """Remove rows, by camera, in one transaction."""
        data = [(root, camera, name) for camera, some in names.items() for name in some]
        if not data:
            return
        try:
            with self._acting(), self._transaction():
                self._db.executemany("DELETE FROM segments WHERE root = ? AND camera = ? AND name = ?", data)
        except sqlite3.Error as exc:
            raise IndexError_(f"cannot write the segment index: {exc}") from None

    def rows(self, camera: str, low: str, high: str, root: str = MIRROR) -> dict[str, Row]:
        """The rows of ``camera`` whose names sort in ``[low, high)``."""
        try:
            with self._acting():
                cursor = self._db.execute(_SELECT + "AND name >= ? AND name < ?", (root, camera, low, high))
                return {r[0]: _row(r) for r in cursor}
        except sqlite3.Error as exc:
            raise IndexError_(f"cannot read the segment index: {exc}") from None

    def last_before(self, camera: str, high: str, low: str = "", root: str = MIRROR) -> Row | None:
        """The row of ``camera`` with the greatest name in ``[low, high)``, or None: the segment that
        runs into a window, found without reading the camera's older rows."""
        try:
            with self._acting():
                found = self._db.execute(_SELECT + "AND name >= ? AND name < ? ORDER BY name DESC LIMIT 1",
                                         (root, camera, low, high)).fetchone()
        except sqlite3.Error as exc:
            raise IndexError_(f"cannot read the segment index: {exc}") from None
        return None if found is None else _row(found)

    def _transaction(self) -> _Transaction:
        return _Transaction(self._db)


_SELECT = ("SELECT name, start, duration, size, mtime_ns, playable, problem FROM segments "
           "WHERE root = ? AND camera = ? ")


def _row(found: tuple[Any, ...]) -> Row:
    """A row read (a duration only when playable, whatever was written). ``tuple.__new__`` is what
    ``Row(...)`` does, without the Python call of its ``__new__`` (a day of a hundred cameras is
    144,000 rows: 50 ms less)."""
    playable = found[5] != 0
    return _NEW(Row, (found[0], found[1], found[2] if playable else 0.0, found[3], found[4], playable, found[6]))


_NEW = tuple.__new__


class _Transaction:
    """``BEGIN IMMEDIATE`` ... ``COMMIT``: takes the write lock at once (waiting up to the busy
    timeout) instead of failing on a lock upgrade half way."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, kind: object, *rest: object) -> None:
        self._db.execute("COMMIT" if kind is None else "ROLLBACK")


def forget_pruned(mirror_dir: Path, deleted: Mapping[str, list[str]]) -> str | None:
    """The pruner's hook: deleted files leave the index. Returns an error text instead of raising."""
    if not any(deleted.values()) or not index_path(mirror_dir).exists():
        return None
    try:
        with SegmentIndex(mirror_dir) as index:
            index.forget(deleted)
    except IndexError_ as exc:
        return str(exc)
    return None
