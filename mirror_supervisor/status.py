"""The ``status`` command: the master's ``status.json`` with what only the mirror can say now
(each camera's newest segment and its age, the last hour's coverage), rendered as a table.

It reads the status file and the mirror, never the master's memory or the NVR's database; every
look at the mirror runs with a deadline, since the volume may hang (docs/design.md, "Status").
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

from .cluster.present import status_lines
from .footage import segments

SEGMENT_CHECK_TIMEOUT = 2.0
NOT_RESPONDING = "volume not responding"
_newest_cache = segments.NewestCache()


def with_segments(data: dict[str, Any], now: float | None = None,
                  timeout: float = SEGMENT_CHECK_TIMEOUT) -> dict[str, Any]:
    """Add each camera's newest segment and its age, read from the mirror directory right now.

    A camera row that names the ``segment`` its worker writes costs one ``stat``; only rows
    without one (or whose file is gone) fall back to a scan of the camera directory. The mirror
    volume may hang (a hard NFS mount, a paused FUSE daemon), so the look-ups run in a daemon
    thread given ``timeout`` seconds in all: rows it did not finish say "volume not responding"
    instead of an age, and ``status`` still answers.
    """
    now = time.time() if now is None else now
    mirror_dir = Path(data.get("master", {}).get("mirror_dir") or ".")
    cameras = [camera for camera in data.get("cameras", []) if isinstance(camera.get("id"), str)]
    found: dict[str, tuple[str | None, float | None]] = {}
    worker = threading.Thread(target=_collect, args=(mirror_dir, cameras, found), name="segments", daemon=True)
    worker.start()
    worker.join(timeout)
    done = dict(found)  # the thread may still be adding: take one copy
    for camera in data.get("cameras", []):
        result = done.get(camera.get("id"))
        if result is None:
            camera["newest_segment"], camera["newest_segment_age"] = None, None
            camera["segment_problem"] = NOT_RESPONDING
            continue
        name, mtime = result
        camera["newest_segment"] = name
        camera["newest_segment_age"] = None if mtime is None else round(max(0.0, now - mtime), 1)
    if len(done) < len(cameras):
        data["volume"] = f"{NOT_RESPONDING}: no answer within {timeout:g}s for {len(cameras) - len(done)} cameras"
    return data


def _collect(mirror_dir: Path, cameras: list[dict[str, Any]], found: dict[str, tuple[str | None, float | None]]) -> None:
    """Rows with a reported segment first (one stat each), then the scans of the rest."""
    later = []
    for camera in cameras:
        result = _stat_segment(mirror_dir / camera["id"], camera.get("segment"))
        if result is None:
            later.append(camera)
        else:
            found[camera["id"]] = result
    for camera in later:
        directory = mirror_dir / camera["id"]
        newest = _newest_cache.newest(directory)
        found[camera["id"]] = _stat_segment(directory, newest[0] if newest else None) or (None, None)


def _stat_segment(directory: Path, name: Any) -> tuple[str, float] | None:
    """(name, mtime) of a reported segment file, or None when there is none or it is gone."""
    if not isinstance(name, str) or not name or "/" in name or name in (".", ".."):
        return None
    try:
        return name, os.stat(directory / name).st_mtime
    except OSError:
        return None


COVERAGE_WINDOW = 3600.0
COVERAGE_TIMEOUT = 3.0


def with_coverage(data: dict[str, Any], now: float | None = None, timeout: float = COVERAGE_TIMEOUT) -> dict[str, Any]:
    """Add each camera's coverage of the last hour (``coverage_1h``, a ratio; from its first
    footage on when that is younger), from the segment index and the files (:mod:`coverage`), in
    a daemon thread given ``timeout`` seconds: on a volume that does not answer the rows say None
    and ``status`` still answers."""
    from .footage import coverage

    now = time.time() if now is None else now
    mirror_dir = data.get("master", {}).get("mirror_dir")
    ids = [camera["id"] for camera in data.get("cameras", []) if isinstance(camera.get("id"), str)]
    found: dict[str, float] = {}

    def collect() -> None:
        report = coverage.compute(Path(mirror_dir), now - COVERAGE_WINDOW, now, cameras=ids, now=now, pool=False)
        found.update({cam.id: cam.coverage_since_first for cam in report.cameras if cam.problem is None})

    if mirror_dir and ids:
        worker = threading.Thread(target=_quietly, args=(collect,), name="coverage", daemon=True)
        worker.start()
        worker.join(timeout)
    done = dict(found)
    for camera in data.get("cameras", []):
        camera["coverage_1h"] = done.get(camera.get("id"))
    return data


def _quietly(action: Any) -> None:
    try:
        action()
    except Exception:  # noqa: BLE001 - status must answer whatever the mirror holds
        pass


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = int(max(0, seconds))
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    if seconds < 172800:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 86400}d{seconds % 86400 // 3600:02d}h"


def _when(epoch: float | None, now: float) -> str:
    if not epoch:
        return "never"
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch)) + f" ({duration(now - epoch)} ago)"


def _percent(ratio: Any) -> str:
    return f"{ratio * 100:.1f}%" if isinstance(ratio, (int, float)) else "-"


def render(data: dict[str, Any], now: float | None = None) -> str:
    """The human table: a header about the master, then one line per camera."""
    now = time.time() if now is None else now
    master = data.get("master", {})
    db = master.get("db", {})
    db_text = "ok" if db.get("state") == "ok" else f"error since {_when(db.get('since'), now)}: {db.get('error')}"
    table = master.get("camera_table") or {}
    cache = table.get("cache") or {}
    if db.get("state") != "ok" and table.get("source") == "cache":
        db_text = f"unreadable, recording from the cache of {_when(cache.get('confirmed_at'), now)}: {db.get('error')}"
    lines = [
        f"master pid={master.get('pid')} uptime={duration(now - master.get('started', now))} "
        f"recorder={'enabled' if master.get('recorder_enabled') else 'DISABLED'} mirror_dir={master.get('mirror_dir')}",
        f"database {master.get('db_path')}: {db_text}",
        f"last reconcile {_when(master.get('last_reconcile'), now)}",
    ]
    if cache.get("path"):
        text = f"matched the database at {_when(cache['confirmed_at'], now)}" if cache.get("confirmed_at") else "none"
        lines.append(f"camera cache {cache['path']}: {text}" + (f" ({cache['problem']})" if cache.get("problem") else ""))
    if data.get("volume"):
        lines.append(f"mirror volume: {data['volume']}")
    lines += status_lines(data.get("cluster"), now)  # with --shard: this host, N, K, its peers
    lines.append("")
    header = ("CAMERA", "STATE", "GEN", "WORKER", "FFMPEG", "UPTIME", "RESTARTS", "NEWEST SEGMENT", "AGE", "COV 1H",
              "LAST ERROR")
    rows = [header]
    for cam in data.get("cameras", []):
        started = cam.get("ffmpeg_started")
        rows.append((
            cam.get("id", "?"),
            cam.get("state", "?"),
            str(cam.get("generation") or "-"),
            str(cam.get("worker_pid") or "-"),
            str(cam.get("ffmpeg_pid") or "-"),
            duration(now - started) if started and cam.get("ffmpeg_pid") else "-",
            str(cam.get("restarts", 0)),
            cam.get("newest_segment") or cam.get("segment_problem") or "-",
            duration(cam.get("newest_segment_age")) if not cam.get("segment_problem") else "?",
            _percent(cam.get("coverage_1h")),
            (cam.get("last_error") or "-").replace("\n", " | ")[:200],
        ))
    widths = [max(len(row[i]) for row in rows) for i in range(len(header) - 1)]
    for row in rows:
        lines.append("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False)) + "  " + row[-1])
    return "\n".join(lines)
