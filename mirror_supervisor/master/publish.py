"""What the master publishes about itself in ``status.json``, and when.

The table changes with every worker report; writing it on every change would cost the master a
core at scale, so :class:`Pacing` says when a change is worth a write now and when it can wait
(docs/design.md, "Status"). The file itself is written by :mod:`status_file`.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Mapping
from typing import Any


class Pacing:
    """When the master rewrites status.json: soon after a change an operator must see (a state,
    an error: within :data:`WRITE_INTERVAL`), and only every :data:`REFRESH_INTERVAL` for details
    (a new segment name: at scale every camera every minute, which must not cost a core)."""

    WRITE_INTERVAL = 0.5
    REFRESH_INTERVAL = 5.0

    def __init__(self) -> None:
        self.urgent, self.stale = True, False
        self.next_write = self.next_refresh = 0.0

    def changed(self, urgent: bool) -> None:
        if urgent:
            self.urgent = True
        else:
            self.stale = True

    def next_moment(self) -> float | None:
        if self.urgent:
            return self.next_write
        return max(self.next_write, self.next_refresh) if self.stale else None

    def due(self, now: float) -> bool:
        """True (and the change counted as written) when status.json is to be written now."""
        wanted = self.urgent or (self.stale and now >= self.next_refresh)
        if not wanted or now < self.next_write:
            return False
        self.urgent = self.stale = False
        self.next_write, self.next_refresh = now + self.WRITE_INTERVAL, now + self.REFRESH_INTERVAL
        return True


def urgent(before: Mapping[str, Any], after: Mapping[str, Any]) -> bool:
    """Does a worker's new report change what an operator must see soon (its state, its ffmpeg,
    its error)? A new segment name alone does not: at scale that is every camera every minute."""
    return any(before.get(key) != value for key, value in after.items() if key != "segment")


def master_section(started: float, settings: Any, source: Any, volume_problem: str | None,
                   volume_since: float | None) -> dict[str, Any]:
    """status.json's header: the master, its database and its mirror volume."""
    return {
        "pid": os.getpid(), "started": started, "recorder_enabled": settings.recorder_enabled,
        "mirror_dir": str(settings.mirror_dir), "db_path": str(settings.db),
        "db": {"state": "error" if source.error else "ok", "error": source.error, "since": source.error_since},
        "columns": sorted(source.columns),
        "volume": {"state": "not responding" if volume_problem else "ok", "error": volume_problem,
                   "since": volume_since},
        "last_reconcile": source.last_read, "camera_table": source.table,
    }


def snapshot(master: dict[str, Any], cameras: list[dict[str, Any]], volume_problem: str | None,
             extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """status.json: the master's header and one row per camera, as the master sees them now, and
    ``extra`` sections (the cluster's, with ``--shard``)."""
    if volume_problem:
        for row in cameras:
            if row["state"] == "recording":
                # Its last word, but nothing reaches a volume that does not answer.
                row.update(state="stalled", last_error=volume_problem)
    return {"version": 1, "updated": time.time(), "master": master, "cameras": cameras, **(extra or {})}


def headline(rows: list[dict[str, Any]], wanted: Mapping[str, bool], db_error: bool, volume_problem: str | None,
             recorder_enabled: bool) -> tuple[Counter[str], dict[str, bool]]:
    """What the master's title and systemd's ``STATUS=`` say: the states of the cameras it wants
    recorded (``wanted`` by id), and its troubles."""
    states = Counter(row["state"] for row in rows if wanted.get(row["id"]))
    return states, {"db_error": db_error, "volume_hung": bool(volume_problem), "disabled": not recorder_enabled}
