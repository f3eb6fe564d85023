"""What the supervisor is doing, as data: worker reports, the status file, and its rendering.

Workers send one JSON line on every change, and again every 30 s, over a pipe shared with the master
(:func:`encode_report` keeps each line below PIPE_BUF in bytes whatever its content, so a line is
one atomic write and lines from different workers never interleave). The master keeps the table and
writes ``<state_dir>/status.json`` atomically when it changes; ``mirror-supervisor status`` reads
that file, so asking never disturbs the master, and never touches the NVR's database.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from . import segments
from .files import STATUS_MODE, write_atomically

STATUS_FILE = "status.json"
MAX_REPORT_BYTES = 3072  # below PIPE_BUF (4096): a write of a whole line is atomic


# Free-text fields an over-long report may lose the start of (the end of an error says most).
TRIMMABLE_FIELDS = ("last_error", "segment")
# What a report must keep to mean anything to the master.
ESSENTIAL_FIELDS = ("camera", "generation", "pid", "state")


def _dumps(report: Mapping[str, Any]) -> bytes:
    """ASCII-only JSON (non-ASCII is escaped), so its length in bytes is its length in characters."""
    return json.dumps(report, separators=(",", ":"), ensure_ascii=True).encode("ascii")


def encode_report(report: Mapping[str, Any], limit: int = MAX_REPORT_BYTES) -> bytes:
    """One JSON line of fewer than ``limit`` bytes (newline included), whatever the content.

    Over-long text fields keep their end; if that is not enough, only the essential fields
    stay; a report that cannot fit even then (a camera id far beyond any valid one) becomes an
    empty line, which the master ignores, rather than a write that could interleave.
    """
    line = _dumps(report)
    if len(line) < limit:
        return line + b"\n"
    trimmed = dict(report)
    for key in TRIMMABLE_FIELDS:
        if isinstance(trimmed.get(key), str):
            trimmed[key] = _longest_tail(trimmed, key, limit)
            line = _dumps(trimmed)
            if len(line) < limit:
                return line + b"\n"
    essential = {key: report[key] for key in ESSENTIAL_FIELDS if key in report}
    line = _dumps(essential)
    return line + b"\n" if len(line) < limit else b"\n"


def _longest_tail(report: dict[str, Any], key: str, limit: int) -> str:
    """The longest ``"..." + end`` of ``report[key]`` for which the line stays under ``limit``."""
    text = str(report[key])
    low, high = 0, len(text)  # characters kept: low always fits (or is 0), high may not
    while low < high:
        middle = (low + high + 1) // 2
        candidate = dict(report, **{key: "..." + text[len(text) - middle:]})
        if len(_dumps(candidate)) < limit:
            low = middle
        else:
            high = middle - 1
    return "..." + text[len(text) - low:] if low else "..."


def decode_reports(buffer: bytes) -> tuple[list[dict[str, Any]], bytes]:
    """Complete lines parsed (malformed ones dropped), and the incomplete rest."""
    *lines, rest = buffer.split(b"\n")
    reports = []
    for line in lines:
        try:
            report = json.loads(line)
        except ValueError:
            continue
        if isinstance(report, dict) and isinstance(report.get("camera"), str):
            reports.append(report)
    return reports, rest


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


def snapshot(master: dict[str, Any], cameras: list[dict[str, Any]], volume_problem: str | None) -> dict[str, Any]:
    """status.json: the master's header and one row per camera, as the master sees them now."""
    if volume_problem:
        for row in cameras:
            if row["state"] == "recording":
                # Its last word, but nothing reaches a volume that does not answer.
                row.update(state="stalled", last_error=volume_problem)
    return {"version": 1, "updated": time.time(), "master": master, "cameras": cameras}


def write(path: Path, snapshot: dict[str, Any], log: Any) -> None:
    """status.json, atomically; compact (the C encoder: an indented dump of 500 cameras cost the
    master 11 ms a write); a failure is a warning, never a reason to stop."""
    try:
        write_atomically(path, json.dumps(snapshot), mode=STATUS_MODE)
    except OSError as exc:
        log.warning("cannot write status file in %s: %s", path.parent, exc)


def remove(state_dir: Path) -> None:
    """At exit: a status file left behind would describe workers that are gone."""
    with contextlib.suppress(OSError):
        (Path(state_dir) / STATUS_FILE).unlink()


def read_status(state_dir: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((Path(state_dir) / STATUS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


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
    from . import coverage

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
