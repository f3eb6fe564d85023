"""A real NVR database for tests: the full ``cameras`` table, written from its own connection.

The supervisor must cope with a database another program writes while it reads, so every write
here opens a separate connection, commits and closes, exactly as the NVR would.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE cameras (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL DEFAULT '',
    vendor TEXT NOT NULL DEFAULT 'generic',
    address TEXT,
    rtsp_port INTEGER NOT NULL DEFAULT 554,
    username TEXT,
    password TEXT,
    main_stream_url TEXT,
    sub_stream_url TEXT,
    record_stream TEXT NOT NULL DEFAULT 'main',
    segment_seconds INTEGER NOT NULL DEFAULT 60,
    retention_hours INTEGER NOT NULL DEFAULT 24,
    record_audio INTEGER NOT NULL DEFAULT 0,
    record_enabled INTEGER NOT NULL DEFAULT 1,
    mirror_enabled INTEGER NOT NULL DEFAULT 0,
    enabled INTEGER NOT NULL DEFAULT 1,
    updated_at TEXT,
    -- columns the real table has that mirroring ignores
    ptz_enabled INTEGER NOT NULL DEFAULT 0,
    onvif_profile TEXT,
    location TEXT,
    created_at TEXT
)
"""


class NvrDatabase:
    def __init__(self, path: Path, wal: bool = True, not_null: bool = True) -> None:
        """``not_null=False`` drops the NOT NULL constraints, for rows with NULL anywhere."""
        self.path = Path(path)
        conn = self._connect()
        try:
            if wal:
                conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(SCHEMA if not_null else SCHEMA.replace(" NOT NULL", ""))
        finally:
            conn.close()

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, timeout=30, isolation_level=None)

    def execute(self, sql: str, params: tuple = ()) -> None:
        conn = self._connect()
        try:
            conn.execute(sql, params)
        finally:
            conn.close()

    def add(self, camera_id: str, **columns: Any) -> None:
        columns = {"id": camera_id, "name": camera_id, "updated_at": "2026-11-23T00:00:00Z", **columns}
        names = ", ".join(columns)
        marks = ", ".join("?" for _ in columns)
        self.execute(f"INSERT INTO cameras ({names}) VALUES ({marks})", tuple(columns.values()))

    def add_mirrored(self, camera_id: str, url: str, segment_seconds: int = 2, **columns: Any) -> None:
        self.add(camera_id, main_stream_url=url, segment_seconds=segment_seconds, mirror_enabled=1, **columns)

    def update(self, camera_id: str, **columns: Any) -> None:
        sets = ", ".join(f"{name} = ?" for name in columns)
        self.execute(f"UPDATE cameras SET {sets} WHERE id = ?", (*columns.values(), camera_id))

    def delete(self, camera_id: str) -> None:
        self.execute("DELETE FROM cameras WHERE id = ?", (camera_id,))
