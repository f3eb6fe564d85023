"""``mirror-supervisor snapshot``: a consistent copy of the NVR's camera table, for a mirror that
runs on another host (README, "When the NVR is gone"; docs/design.md, "Snapshot").

A mirror on the NVR's own host dies with it. Another host needs the ``cameras`` table, and
neither of the obvious ways is safe: SQLite's documentation says a WAL database must not be
opened over a network file system (its shared memory does not work there), and a copy of a live
database file (``cp``, ``scp``, ``rsync`` of it) can be torn: pages from before and after a commit,
or a main file without its ``-wal``. So on the NVR's host this command copies the table inside
one read transaction into a new database of its own, and only that file travels.

- One read transaction: the copy holds exactly the rows committed when it began, never a row of
  a transaction still open. In WAL mode a reader never blocks the NVR's writers; with a rollback
  journal it holds a shared lock only while the rows are copied into memory (no disk write, no
  fsync inside it). Measured: scripts/bench_snapshot.py.
- Only what the mirror reads: the ``cameras`` table's used columns (the NVR's other tables and
  columns stay home), stored without declared types, so every value keeps its storage class.
- Written whole or not at all: a temporary name (mode 0640), fsync, rename over ``--out``, fsync of
  the directory; readers of ``--out`` (rsync on its way to the mirror host, a master) always see a
  whole database. A source that cannot be read is one line and exit 1, ``--out`` left as it was.
- Marked as ours in the SQLite header (``application_id``), so a master reading such a copy knows
  to warn when it stops being replaced (:class:`CopyWatch`): the NVR may be down, or the
  transfer broken; it keeps recording from it either way.
"""

from __future__ import annotations

import os
import secrets
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from ..plumbing import files, logs, volume
from .camera import COLUMNS

APPLICATION_ID = 0x4D536E70  # "MSnp": PRAGMA application_id of a copy written here
SNAPSHOT_VERSION = 1  # PRAGMA user_version of a copy
SNAPSHOT_MODE = 0o640  # the cameras' passwords: the transfer's group may read it, nobody else
BUSY_TIMEOUT = 5.0  # a rollback-journal source mid-commit: wait a little, then give up (exit 1)
ANSWER_TIMEOUT = 3.0
_HEADER = b"SQLite format 3\x00"


class SnapshotError(Exception):
    """The copy was not made; one line, and ``--out`` is as it was."""


@dataclass(frozen=True)
class Taken:
    rows: int
    columns: tuple[str, ...]
    read_seconds: float  # how long the read transaction on the NVR's database lasted
    seconds: float  # the whole copy, fsyncs included


def take(source: Path, out: Path, busy_timeout: float = BUSY_TIMEOUT) -> Taken:
    """Copy the used columns of ``source``'s ``cameras`` to ``out`` atomically; SnapshotError if not."""
    began = time.monotonic()
    source, out = Path(source), Path(out)
    if not volume.answers_within(source, ANSWER_TIMEOUT):
        raise SnapshotError(f"database volume not responding: no answer in {ANSWER_TIMEOUT:.0f}s from {str(source)!r}")
    if not source.is_file():
        raise SnapshotError(f"database {str(source)!r} does not exist or is not a file")
    memory = sqlite3.connect("file::memory:", uri=True, isolation_level=None, timeout=busy_timeout)
    try:
        names, rows, read_seconds = _copy_into(memory, source)
        _write(memory, out)
    finally:
        memory.close()
    return Taken(rows, names, read_seconds, time.monotonic() - began)


def _copy_into(memory: sqlite3.Connection, source: Path) -> tuple[tuple[str, ...], int, float]:
    """The table into ``memory`` within one read transaction on ``source`` (which writes nothing)."""
    try:
        memory.execute("ATTACH DATABASE ? AS nvr", (f"{source.resolve().as_uri()}?mode=ro",))
        began = time.monotonic()
        memory.execute("BEGIN")
        try:
            present = {row[1] for row in memory.execute("PRAGMA nvr.table_info(cameras)")}
            names = tuple(name for name in COLUMNS if name in present)
            if not present:
                raise SnapshotError(f"database {str(source)!r} has no table 'cameras'")
            if "id" not in names:
                raise SnapshotError(f"table 'cameras' in {str(source)!r} has no column 'id'")
            quoted = ", ".join(f'"{name}"' for name in names)
            memory.execute(f"CREATE TABLE main.cameras ({quoted})")  # no declared types: values stay as stored
            memory.execute(f"INSERT INTO main.cameras ({quoted}) SELECT {quoted} FROM nvr.cameras")
            memory.execute("COMMIT")
        except BaseException:
            if memory.in_transaction:
                memory.execute("ROLLBACK")
            raise
        read_seconds = time.monotonic() - began
        memory.execute("DETACH DATABASE nvr")
        rows = memory.execute("SELECT count(*) FROM main.cameras").fetchone()[0]
    except sqlite3.Error as exc:
        from .database import describe  # only here: sqlite_utils takes longer to load than a copy takes

        raise SnapshotError(f"cannot read database {str(source)!r}: {describe(exc)}") from None
    return names, rows, read_seconds


def _write(memory: sqlite3.Connection, out: Path) -> None:
    """``memory`` to a fresh temporary file beside ``out``, fsynced, then renamed over it."""
    tmp = out.with_name(f".{out.name}.{secrets.token_hex(8)}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, SNAPSHOT_MODE)
    except OSError as exc:
        raise SnapshotError(f"cannot write {str(out)!r}: {exc.strerror}") from None
    try:
        try:
            os.fchmod(fd, SNAPSHOT_MODE)  # whatever the umask
        finally:
            os.close(fd)
        memory.execute(f"PRAGMA main.application_id = {APPLICATION_ID}")
        memory.execute(f"PRAGMA main.user_version = {SNAPSHOT_VERSION}")
        target = sqlite3.connect(tmp, isolation_level=None)  # an empty file is an empty database
        try:
            memory.backup(target)
        finally:
            target.close()
        fd = os.open(tmp, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        files.replace_durably(tmp, out)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(exc, OSError | sqlite3.Error):
            raise SnapshotError(f"cannot write {str(out)!r}: {getattr(exc, 'strerror', None) or exc}") from None
        raise


def run(source: Path, out: Path, err: TextIO) -> int:
    """The command: silent on success (it runs every few seconds), one line and 1 on failure."""
    try:
        take(source, out)
    except SnapshotError as exc:
        print(f"mirror-supervisor: snapshot: {exc}", file=err)
        return 1
    return 0


def is_snapshot(path: Path) -> bool:
    """Was ``path`` written by :func:`take`? Read from the SQLite header (100 bytes)."""
    try:
        with open(path, "rb") as handle:
            header = handle.read(100)
    except OSError:
        return False
    return len(header) == 100 and header.startswith(_HEADER) and int.from_bytes(header[68:72], "big") == APPLICATION_ID


class CopyWatch:
    """Whether ``--db`` is a copy from :func:`take` that stopped being replaced.

    The master hands it the database file's fingerprint on every poll (a stat it makes anyway).
    A copy is replaced every few seconds while the NVR's host and the transfer work; one that has
    not changed for the limit gets one warning (and one line when it changes again). Time is the
    master's monotonic clock from the change it saw, or at its first look the file's mtime (a
    copy found old at start is warned about at once). Recording goes on from it either way.
    """

    def __init__(self) -> None:
        self.log = logs.master()
        self.is_copy = False
        self.stale = False
        self._mark: tuple | None = None
        self._changed = 0.0

    def observe(self, path: Path, mark: tuple, now: float, limit: float) -> None:
        main = mark[0]
        if main == (0, 0, 0):
            return  # no file: the database error says so
        if mark != self._mark:
            if self._mark is None or main[0] != self._mark[0][0]:  # a new file (rsync renames one in)
                self.is_copy = is_snapshot(path)
            if self.stale and self.is_copy:
                self.log.info("database %s: the snapshot copy is being replaced again", path)
            age = max(0.0, time.time() - main[2] / 1e9)
            self._mark, self._changed, self.stale = mark, now - age, False
        if self.is_copy and not self.stale and now - self._changed > limit:
            self.stale = True
            self.log.warning("database %s is a snapshot copy that has not been replaced for %.0fs (the NVR's host may be "
                             "down, or the transfer broken); recording goes on from it", path, now - self._changed)
