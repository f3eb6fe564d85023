"""What the supervisor is doing, as data: worker reports, the status file, and its rendering.

Workers send one JSON line per state change over a pipe shared with the master (each line is far
below PIPE_BUF, so lines from different workers never interleave). The master keeps the table and
writes ``<state_dir>/status.json`` atomically when it changes; ``mirror-supervisor status`` reads
that file, so asking never disturbs the master, and never touches the NVR's database.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from . import segments
from .files import write_atomically  # noqa: F401  (the master imports it from here)

STATUS_FILE = "status.json"
MAX_REPORT_BYTES = 3072  # below PIPE_BUF (4096): a write of a whole line is atomic


def encode_report(report: Mapping[str, Any]) -> bytes:
    """One JSON line; an over-long error text is cut so the line stays atomic."""
    line = json.dumps(report, separators=(",", ":")).encode()
    if len(line) >= MAX_REPORT_BYTES and report.get("last_error"):
        trimmed = dict(report, last_error="..." + str(report["last_error"])[-(MAX_REPORT_BYTES // 2):])
        line = json.dumps(trimmed, separators=(",", ":")).encode()
    return line + b"\n"


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


def read_status(state_dir: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((Path(state_dir) / STATUS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def with_segments(data: dict[str, Any], now: float | None = None) -> dict[str, Any]:
    """Add each camera's newest segment and its age, read from the mirror directory right now."""
    now = time.time() if now is None else now
    mirror_dir = Path(data.get("master", {}).get("mirror_dir") or ".")
    for camera in data.get("cameras", []):
        found = segments.newest(mirror_dir / camera.get("id", ""))
        camera["newest_segment"] = found[0] if found else None
        age = None
        if found:
            try:
                age = max(0.0, now - os.stat(mirror_dir / camera["id"] / found[0]).st_mtime)
            except OSError:
                pass
        camera["newest_segment_age"] = None if age is None else round(age, 1)
    return data


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


def render(data: dict[str, Any], now: float | None = None) -> str:
    """The human table: a header about the master, then one line per camera."""
    now = time.time() if now is None else now
    master = data.get("master", {})
    db = master.get("db", {})
    db_text = "ok" if db.get("state") == "ok" else f"error since {_when(db.get('since'), now)}: {db.get('error')}"
    lines = [
        f"master pid={master.get('pid')} uptime={duration(now - master.get('started', now))} "
        f"recorder={'enabled' if master.get('recorder_enabled') else 'DISABLED'} mirror_dir={master.get('mirror_dir')}",
        f"database {master.get('db_path')}: {db_text}",
        f"last reconcile {_when(master.get('last_reconcile'), now)}",
        "",
    ]
    header = ("CAMERA", "STATE", "GEN", "WORKER", "FFMPEG", "UPTIME", "RESTARTS", "NEWEST SEGMENT", "AGE", "LAST ERROR")
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
            cam.get("newest_segment") or "-",
            duration(cam.get("newest_segment_age")),
            (cam.get("last_error") or "-").replace("\n", " | ")[:200],
        ))
    widths = [max(len(row[i]) for row in rows) for i in range(len(header) - 1)]
    for row in rows:
        lines.append("  ".join(cell.ljust(width) for cell, width in zip(row, widths)) + "  " + row[-1])
    return "\n".join(lines)
