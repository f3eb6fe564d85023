"""The benchmark's NVR database: the ``cameras`` table, written the way the NVR writes it.

Every write opens its own connection, commits and closes, so the supervisor under test reads a
database that another program changes underneath it.
"""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path

from .schema import SCHEMA

UPDATED_AT = "2026-11-23T00:00:00Z"


class Nvr:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        with self._connection() as conn:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(SCHEMA)

    def _connection(self) -> contextlib.closing[sqlite3.Connection]:
        return contextlib.closing(sqlite3.connect(self.path, timeout=30, isolation_level=None))

    def add_many(self, rows: list[tuple[str, str, int, bool]]) -> None:
        """Insert (id, url, segment_seconds, mirrored) rows in one transaction."""
        with self._connection() as conn:
            conn.execute("BEGIN")
            conn.executemany(
                "INSERT INTO cameras (id, name, main_stream_url, segment_seconds, mirror_enabled, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                [(cam, cam, url, seconds, int(mirrored), UPDATED_AT) for cam, url, seconds, mirrored in rows],
            )
            conn.execute("COMMIT")

    def set_segment_seconds(self, camera_id: str, seconds: int) -> None:
        with self._connection() as conn:
            conn.execute("UPDATE cameras SET segment_seconds = ? WHERE id = ?", (seconds, camera_id))

    def delete(self, camera_id: str) -> None:
        with self._connection() as conn:
            conn.execute("DELETE FROM cameras WHERE id = ?", (camera_id,))

