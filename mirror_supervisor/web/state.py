"""What the page says about the master and each camera, from files the master already leaves in
its state dir: ``status.json`` (docs/design.md, "Status") and the volume probe's answer
(``metrics-probe.json``: free space, and the size and mtime of each camera's current segment).

Both are small local files, so nothing here can wait on the mirror volume. Pure apart from
:func:`read_json`: the texts are plain (the page escapes them), every value from status.json is
taken as untrusted data (any type, any text) and a last error is masked once more, whatever the
master did.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..cluster.present import status_lines
from ..plumbing.http_listener import FileVersion
from ..plumbing.masking import mask
from .timeline import length

PROBE_FILE = "metrics-probe.json"  # written by the volume probe (metrics/metrics.py, PROBE_FILE)
PROBE_OLD = 60.0  # the probe runs every 10 s: an answer this old says the volume stopped answering
MAX_ERROR = 300
STATE_CLASSES = {"recording": "ok", "backoff": "bad", "stalled": "bad", "error": "bad"}  # others: "warn"


@dataclass(frozen=True)
class Fact:
    label: str
    text: str
    bad: bool = False


@dataclass(frozen=True)
class CameraRow:
    id: str
    name: str  # "" when it is the id, or unknown
    state: str
    state_class: str  # ok, warn or bad: from a fixed set, never the state text itself
    newest: str  # the newest segment's name, or ""
    newest_age: str  # "written 4 s ago", or why not known
    restarts: str
    last_error: str


def read_json(version: FileVersion) -> tuple[dict[str, Any] | None, float | None]:
    """A JSON object file and its modification time (None, None when missing or not an object)."""
    try:
        content, _ = version.read()
        data = json.loads(content)
        mtime = Path(version.path).stat().st_mtime
    except (OSError, ValueError):
        return None, None
    return (data, mtime) if isinstance(data, dict) else (None, None)


def when(epoch: Any, now: float) -> str:
    if not isinstance(epoch, int | float) or epoch <= 0:
        return "never"
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(epoch)) + f" ({length(now - epoch)} ago)"


def size(value: Any) -> str:
    amount = float(value)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if amount < 1024 or unit == "TiB":
            return f"{amount:.0f} {unit}" if unit == "B" else f"{amount:.1f} {unit}"
        amount /= 1024
    raise AssertionError("unreachable")


def _section(data: dict[str, Any], key: str) -> dict[str, Any]:
    value = data.get(key)
    return value if isinstance(value, dict) else {}


def database(master: dict[str, Any], now: float) -> Fact:
    db, table = _section(master, "db"), _section(master, "camera_table")
    path = str(master.get("db_path") or "?")
    if db.get("state") == "ok":
        return Fact("database", f"{path}: ok")
    error = mask(str(db.get("error") or "unknown error"))
    if table.get("source") == "cache":
        cache = _section(table, "cache")
        return Fact("database", f"{path}: unreadable, recording from the camera cache of "
                                f"{when(cache.get('confirmed_at'), now)}: {error}", bad=True)
    return Fact("database", f"{path}: unreadable since {when(db.get('since'), now)}: {error}", bad=True)


def volume(master: dict[str, Any], probe: dict[str, Any] | None, probe_time: float | None, now: float) -> Fact:
    where = str(master.get("mirror_dir") or "?")
    state = _section(master, "volume")
    if state.get("state") not in (None, "ok"):
        return Fact("mirror volume", f"{where}: not responding since {when(state.get('since'), now)}", bad=True)
    free = probe.get("free") if probe else None
    if not isinstance(free, int | float) or probe_time is None:
        return Fact("mirror volume", f"{where}: free space not measured yet")
    age = now - probe_time
    text = f"{where}: {size(free)} free"
    if age > PROBE_OLD:
        return Fact("mirror volume", f"{text}, measured {length(age)} ago (the volume probe has not answered since)",
                    bad=True)
    return Fact("mirror volume", text)


def header(status: dict[str, Any], probe: dict[str, Any] | None, probe_time: float | None, status_time: float | None,
           now: float) -> list[Fact]:
    """The facts above the cameras: the master, its database, the mirror volume, the cluster."""
    master = _section(status, "master")
    started = master.get("started")
    up = length(now - started) if isinstance(started, int | float) else "?"
    facts = [Fact("master", f"pid {master.get('pid')}, up {up}"
                            + ("" if master.get("recorder_enabled", True) else ", recording DISABLED"),
                  bad=not master.get("recorder_enabled", True)),
             database(master, now), volume(master, probe, probe_time, now)]
    for line in status_lines(status.get("cluster") if isinstance(status.get("cluster"), dict) else None, now):
        label, _, text = line.partition(": ") if line.startswith("cluster: ") else ("cluster", "", line)
        facts.append(Fact(label, text, bad=" down since " in text))
    if status_time is not None:
        facts.append(Fact("status", f"written by the master {length(now - status_time)} ago"))
    return facts


def _newest(camera: dict[str, Any], probe: dict[str, Any] | None, now: float) -> tuple[str, str]:
    """The segment the worker reports, and how long ago the volume probe (every 10 s) last saw a
    write to any of the camera's segments: with short segments the one it measured may already
    be the previous one, and the last write is what tells footage arriving."""
    name = camera.get("segment")
    if not isinstance(name, str) or not name:
        return "", "none yet"
    cameras = probe.get("cameras") if probe else None
    found = cameras.get(camera.get("id")) if isinstance(cameras, dict) else None
    mtimes = [answer[1] for answer in (found.values() if isinstance(found, dict) else ())
              if isinstance(answer, list) and len(answer) == 2 and isinstance(answer[1], int | float)]
    if mtimes:
        return name, f"last write seen {length(max(0.0, now - max(mtimes)))} ago"
    return name, "last write not measured yet"


def rows(status: dict[str, Any], probe: dict[str, Any] | None, now: float) -> list[CameraRow]:
    """One row per camera in status.json, in its order."""
    out = []
    for camera in status.get("cameras") or []:
        if not isinstance(camera, dict):
            continue
        cid = str(camera.get("id"))
        name = camera.get("name")
        state = str(camera.get("state") or "?")
        newest, age = _newest(camera, probe, now)
        error = camera.get("last_error")
        error_text = mask(str(error)).replace("\r", " ").replace("\n", " | ") if error else ""
        restarts = camera.get("restarts")
        out.append(CameraRow(
            cid, str(name) if isinstance(name, str) and name != cid else "", state,
            STATE_CLASSES.get(state, "warn"), newest, age,
            str(restarts) if isinstance(restarts, int) else "-",
            error_text[:MAX_ERROR] + ("..." if len(error_text) > MAX_ERROR else "")))
    return out
