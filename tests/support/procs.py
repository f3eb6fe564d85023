"""Looking at the real process tree: workers by their titles, ffmpegs by their output directory."""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import psutil

WORKER_TITLE = re.compile(r"mirror-supervisor: worker (\S+) gen=(\d+) (\S+)")
T = TypeVar("T")


@dataclass(frozen=True)
class WorkerView:
    camera: str
    pid: int
    generation: int
    state: str
    ffmpeg_pids: tuple[int, ...]


def disturbed(before: dict[str, WorkerView], after: dict[str, WorkerView] | None, log: str) -> list[str]:
    """Cameras whose recording was disturbed between two worker tables, each with how: its worker
    replaced (pid or generation), or its ffmpeg restarted without the worker saying why. A worker
    restarts its own ffmpeg after a stall or an exit, which a loaded machine can cause (seen in
    suite runs) and which no reload or fault under test may; the worker logs each one as
    ``<camera> ffmpeg exited ...`` or ``<camera> ...; restarting it``. Empty: undisturbed."""
    found = []
    for camera, view in before.items():
        now = (after or {}).get(camera)
        if now is None or (now.pid, now.generation) != (view.pid, view.generation):
            found.append(f"{camera}: worker replaced ({view} -> {now})")
        elif now.ffmpeg_pids != view.ffmpeg_pids and not re.search(
                rf" {re.escape(camera)} (ffmpeg exited|.*restarting it)", log):
            found.append(f"{camera}: ffmpeg restarted and its worker does not say why ({view} -> {now})")
    return found


def title(proc: psutil.Process) -> str:
    try:
        return " ".join(proc.cmdline()).strip()
    except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
        return ""


def workers(master_pid: int) -> dict[str, list[WorkerView]]:
    """Live workers of a master, by camera (a list, so duplicates would show)."""
    table: dict[str, list[WorkerView]] = {}
    try:
        children = psutil.Process(master_pid).children()
    except psutil.NoSuchProcess:
        return table
    for child in children:
        match = WORKER_TITLE.match(title(child))
        if not match or _is_zombie(child):
            continue
        try:
            ffmpegs = tuple(p.pid for p in child.children() if not _is_zombie(p) and "ffmpeg" in title(p))
        except psutil.NoSuchProcess:
            continue
        view = WorkerView(match.group(1), child.pid, int(match.group(2)), match.group(3), ffmpegs)
        table.setdefault(view.camera, []).append(view)
    return table


def _is_zombie(proc: psutil.Process) -> bool:
    try:
        return proc.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def ffmpegs_writing(directory: Path) -> list[int]:
    """Every live ffmpeg on the machine whose output lies under ``directory``, orphans included."""
    needle = str(directory).rstrip("/") + "/"
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = proc.info["cmdline"] or []
        if cmdline and "ffmpeg" in Path(cmdline[0]).name and any(arg.startswith(needle) for arg in cmdline):
            if not _is_zombie(proc):
                found.append(proc.pid)
    return found


def alive(pid: int) -> bool:
    try:
        return not _is_zombie(psutil.Process(pid))
    except psutil.NoSuchProcess:
        return False


def wait_for(what: str, check: Callable[[], T], timeout: float, interval: float = 0.1) -> T:
    """Poll ``check`` until it returns something truthy; fail with ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for: {what} (last value {value!r})")
        time.sleep(interval)


def probe(path: Path) -> dict:
    """ffprobe's view of a media file: format duration and the first video stream's codec."""
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "format=duration:stream=codec_type,codec_name",
         "-of", "json", str(path)],
        capture_output=True, text=True, timeout=30,
    )
    if out.returncode != 0:
        return {"error": out.stderr.strip()}
    data = json.loads(out.stdout)
    video = [s for s in data.get("streams", []) if s.get("codec_type") == "video"]
    return {
        "duration": float(data.get("format", {}).get("duration", 0) or 0),
        "video_codec": video[0]["codec_name"] if video else None,
        "streams": [s.get("codec_type") for s in data.get("streams", [])],
    }
