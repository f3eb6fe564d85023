"""Reading the NVR's ``cameras`` table (docs/design.md, "Database").

The database belongs to the NVR, which writes it while we read. So: open read-only, wait for a
lock only briefly, hold nothing between reads, and turn every failure into :class:`DatabaseError`
so that the caller can treat "cannot read" as "no news", never as "no cameras".

A TEXT value that is not UTF-8 must not be such a failure: it is one row's problem, so text is
decoded per value and undecodable values reach :func:`parse_row` as bytes, which decides per
column what they mean.
"""

from __future__ import annotations

import os
import re
import sqlite3
from dataclasses import dataclass
from pathlib import Path

import sqlite_utils

from ..plumbing import volume
from .camera import COLUMNS, Camera, parse_row

BUSY_TIMEOUT_SECONDS = 1.0
# sqlite3 quotes the offending value in some errors ("... with text '<value>'"): it may be a
# password, or raw bytes, and DatabaseError texts go to the log and status.json.
_QUOTED_VALUE = re.compile(r"\s*with text\b.*", re.DOTALL)


class DatabaseError(Exception):
    """The camera list could not be read; the message is one line for the log and status."""


ANSWER_TIMEOUT = 3.0  # a stat of the database file takes microseconds; seconds is a hung volume


def not_responding(path: Path, timeout: float = ANSWER_TIMEOUT) -> DatabaseError:
    return DatabaseError(f"database volume not responding: no answer in {timeout:.0f}s from {str(path)!r} "
                         "(a hung network share or disk?)")


def require_answer(path: Path, timeout: float = ANSWER_TIMEOUT) -> None:
    """Before a hand-run command reads the database: its volume may hang (the NVR's data on a NAS
    share or a dying disk), and a command must fail in one line rather than sleep in the kernel.
    The master asks the same way on every poll (``wanted.CameraSource``)."""
    if not volume.answers_within(path, timeout):
        raise not_responding(path, timeout)


def read_cameras(path: Path, busy_timeout: float = BUSY_TIMEOUT_SECONDS) -> list[Camera]:
    """Every row of ``cameras``, parsed; the list is empty only if the table really is."""
    return read_table(path, busy_timeout)[0]


def fingerprint(path: Path) -> tuple[tuple[int, int, int], ...]:
    """Identity, size and mtime of the database and its WAL: any committed write changes them.

    Lets the master skip parsing an unchanged table on every poll (the idle cost of a 1 s poll
    over 1,000 rows); SIGHUP and a periodic full read do not rely on it.
    """
    marks = []
    for candidate in (Path(path), Path(f"{path}-wal")):
        try:
            st = os.stat(candidate)
        except OSError:
            marks.append((0, 0, 0))
        else:
            marks.append((st.st_ino, st.st_size, st.st_mtime_ns))
    return tuple(marks)


RowCache = dict[tuple, Camera]


def probe(path: Path, busy_timeout: float = BUSY_TIMEOUT_SECONDS) -> frozenset[str]:
    """Can the table be read right now? Its used columns, or DatabaseError with the reason.

    The cheap check for a poll whose fingerprint says nothing changed: a lock, a table renamed
    away or a lost column leave the file's size and mtime alone but must still be reported.
    """
    path = Path(path)
    conn = _connect(path, busy_timeout)
    try:
        _, columns = _cameras_table(conn, path)
        conn.execute("SELECT 1 FROM cameras LIMIT 1").fetchall()
    except sqlite3.Error as exc:
        raise DatabaseError(f"cannot read database {str(path)!r}: {describe(exc)}") from None
    finally:
        conn.close()
    return frozenset(columns)


def _connect(path: Path, busy_timeout: float) -> sqlite3.Connection:
    if not path.is_file():
        raise DatabaseError(f"database {str(path)!r} does not exist or is not a file")
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=busy_timeout)
    except sqlite3.Error as exc:
        raise DatabaseError(f"cannot open database {str(path)!r}: {describe(exc)}") from None
    conn.text_factory = decode_text
    return conn


def decode_text(raw: bytes) -> str | bytes:
    """The connection's text_factory: UTF-8 text as str, anything else left as bytes.

    With the default factory one undecodable value anywhere in the table makes the whole SELECT
    fail (so no camera at all would be read), and the error quotes the value.
    """
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw


def describe(exc: BaseException) -> str:
    """An sqlite3 error as one line that quotes no column value."""
    text = _QUOTED_VALUE.sub("", str(exc))
    return " ".join(text.split()) or type(exc).__name__


def _cameras_table(conn: sqlite3.Connection, path: Path) -> tuple[sqlite_utils.Database, set[str]]:
    """The table and the used columns it has; raises sqlite3.Error or DatabaseError."""
    db = sqlite_utils.Database(conn, execute_plugins=False)
    if not db["cameras"].exists():
        raise DatabaseError(f"database {str(path)!r} has no table 'cameras'")
    columns = {column.name for column in db["cameras"].columns} & set(COLUMNS)
    if "id" not in columns:
        raise DatabaseError(f"table 'cameras' in {str(path)!r} has no column 'id'")
    return db, columns


@dataclass(frozen=True)
class RawTable:
    """One consistent read of ``cameras`` before parsing: what the camera cache keeps.

    ``names`` are the used columns the table has, in :data:`COLUMNS` order, and the layout of each
    row; a value is None, int, float, str, or bytes (text that is not UTF-8, a BLOB).
    """

    names: tuple[str, ...]
    rows: list[tuple]

    @property
    def columns(self) -> frozenset[str]:
        return frozenset(self.names)


def read_raw(path: Path, busy_timeout: float = BUSY_TIMEOUT_SECONDS) -> RawTable:
    """The used columns of every row, as stored, in one statement (one read transaction).

    Only those columns are selected (the NVR's real table has many more)."""
    path = Path(path)
    conn = _connect(path, busy_timeout)
    try:
        db, columns = _cameras_table(conn, path)
        names = tuple(name for name in COLUMNS if name in columns)
        selected = ", ".join(f'"{name}"' for name in names)
        rows = db.execute(f"SELECT {selected} FROM cameras ORDER BY id").fetchall()
    except sqlite3.Error as exc:
        raise DatabaseError(f"cannot read database {str(path)!r}: {describe(exc)}") from None
    finally:
        conn.close()
    return RawTable(names, rows)


def parse_rows(table: RawTable, cache: RowCache | None = None) -> list[Camera]:
    """Every row parsed. ``cache`` maps a raw row to its parsed Camera: a caller that reads every
    poll passes the same dict each time, so an unchanged row costs a dict lookup instead of a
    parse; it is refilled with this table's rows."""
    previous = cache.copy() if cache is not None else {}
    if cache is not None:
        cache.clear()
    cameras = []
    names = table.names
    for row in table.rows:
        key = (*names, *row)  # the column names too: a vanished column must not hit the cache
        camera = previous.get(key)
        if camera is None:
            camera = parse_row(dict(zip(names, row, strict=True)))
        if cache is not None:
            cache[key] = camera
        cameras.append(camera)
    return cameras


def read_table(
    path: Path, busy_timeout: float = BUSY_TIMEOUT_SECONDS, cache: RowCache | None = None
) -> tuple[list[Camera], frozenset[str]]:
    """The parsed rows and the names of the table's columns that mirroring uses (see
    :func:`read_raw` and :func:`parse_rows`)."""
    table = read_raw(path, busy_timeout)
    return parse_rows(table, cache), table.columns
